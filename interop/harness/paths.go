package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// InteropDir returns the absolute path of the repository's interop directory,
// found by walking up from the working directory (a test's package directory)
// to the directory that holds go.mod.
func InteropDir(t testing.TB) string {
	t.Helper()
	dir, err := interopDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func interopDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			interop := filepath.Join(dir, "interop")
			if _, err := os.Stat(filepath.Join(interop, "package.json")); err != nil {
				return "", fmt.Errorf("found the module root %s but no interop/package.json in it", dir)
			}
			return interop, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
		dir = parent
	}
}

// NPMInstalled fails the test unless the interop npm packages are installed.
// It returns the interop directory.
func NPMInstalled(t testing.TB) string {
	t.Helper()
	dir, err := npmInstalled()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func npmInstalled() (string, error) {
	dir, err := interopDir()
	if err != nil {
		return "", err
	}
	for _, p := range []string{
		"node_modules/@livestore/sync-cf/package.json",
		"node_modules/@livestore/adapter-node/package.json",
		"node_modules/wrangler/package.json",
		"node_modules/ws/package.json",
	} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return "", fmt.Errorf("interop npm packages are not installed (%s missing); run: (cd interop && npm ci)", p)
		}
	}
	return dir, nil
}
