package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The Node programs are embedded and written to a scratch directory next to
// a node_modules symlink pointing at interop/node_modules: ESM resolves bare
// imports from the real location of the importing file and ignores
// NODE_PATH, and the repository keeps a single npm tree.
//
//go:embed js/*.mjs
var jsFiles embed.FS

// errNoNodeModules is the message a missing npm tree fails with.
var errNoNodeModules = errors.New("interop/node_modules is missing; run: (cd interop && npm ci)")

// nodeEnv is a prepared directory to run the JS programs from.
type nodeEnv struct {
	dir     string // holds bench.mjs, schema.mjs and the node_modules link
	version string
}

func newNodeEnv(interopDir, scratch string) (*nodeEnv, error) {
	nm := filepath.Join(interopDir, "node_modules")
	if _, err := os.Stat(filepath.Join(nm, "@livestore", "adapter-node")); err != nil {
		return nil, errNoNodeModules
	}
	nm, err := filepath.Abs(nm)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("node --version: %w", err)
	}
	dir := filepath.Join(scratch, "js")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files, err := fs.Glob(jsFiles, "js/*.mjs")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := jsFiles.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.Symlink(nm, filepath.Join(dir, "node_modules")); err != nil {
		return nil, err
	}
	return &nodeEnv{dir: dir, version: strings.TrimSpace(string(out))}, nil
}

// command is `node bench.mjs args...`, killed when ctx ends.
func (e *nodeEnv) command(ctx context.Context, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(e.dir, "bench.mjs")}, args...)...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	return cmd
}
