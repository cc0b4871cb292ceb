// Package codesize measures the Go sources of a module against size limits:
// the lines of each non-test file and of each function or function literal.
// The module's own guard test runs it over the whole tree so that a file or
// function grown past the limits fails the build's tests by name.
//
// It reads source text only; it does not type-check, build or run anything,
// and it does not judge anything but length (duplication and style are
// checked elsewhere).
package codesize

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Limits are the largest sizes allowed, in lines. A zero field checks
// nothing of its kind.
type Limits struct {
	// FileLines is the most lines a non-test, non-generated .go file may have.
	FileLines int
	// FuncLines is the most lines a function declaration or function
	// literal may span, from the func keyword to its closing brace.
	FuncLines int
}

// Offence is one file or function over its limit.
type Offence struct {
	// Path is the file, relative to the root that was checked, with
	// forward slashes.
	Path string
	// Line is where the function starts; 0 for a whole file.
	Line int
	// Name is the function ("Type.Method", "name", or "func literal in
	// name"); empty for a whole file.
	Name string
	// Lines is the size measured.
	Lines int
	// Limit is the limit it passes.
	Limit int
}

// String describes the offence as "path:line name: N lines (limit L)".
func (o Offence) String() string {
	if o.Name == "" {
		return fmt.Sprintf("%s: %d lines (limit %d)", o.Path, o.Lines, o.Limit)
	}
	return fmt.Sprintf("%s:%d %s: %d lines (limit %d)", o.Path, o.Line, o.Name, o.Lines, o.Limit)
}

// skipDir reports whether a directory holds no sources of the module: the
// ones the go tool ignores (testdata, names starting with "." or "_") and
// installed JavaScript packages.
func skipDir(name string) bool {
	return name == "testdata" || name == "node_modules" || name == "vendor" ||
		strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// Check walks the .go files below root, leaving out tests (_test.go),
// generated files (a "Code generated ... DO NOT EDIT." comment) and the
// directories the go tool ignores, and returns every offence against lim,
// sorted by path and line.
func Check(root string, lim Limits) ([]Offence, error) {
	var out []Offence
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return fmt.Errorf("codesize: %w", err)
		}
		found, err := CheckFile(path, filepath.ToSlash(rel), lim)
		if err != nil {
			return err
		}
		out = append(out, found...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("codesize: walk %s: %w", root, err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Line < out[j].Line
	})
	return out, nil
}

// CheckFile measures one Go file, naming it rel in the offences. A
// generated file has none.
func CheckFile(path, rel string, lim Limits) ([]Offence, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("codesize: %w", err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("codesize: %w", err)
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	var out []Offence
	if n := fileLines(src); lim.FileLines > 0 && n > lim.FileLines {
		out = append(out, Offence{Path: rel, Lines: n, Limit: lim.FileLines})
	}
	if lim.FuncLines > 0 {
		out = append(out, funcOffences(fset, f, rel, lim.FuncLines)...)
	}
	return out, nil
}

// fileLines counts lines as wc -l does, plus a last line without a newline.
func fileLines(src []byte) int {
	n := strings.Count(string(src), "\n")
	if len(src) > 0 && src[len(src)-1] != '\n' {
		n++
	}
	return n
}

// funcOffences returns the function declarations and literals of f longer
// than limit lines.
func funcOffences(fset *token.FileSet, f *ast.File, rel string, limit int) []Offence {
	var out []Offence
	check := func(node ast.Node, name string) {
		start, end := fset.Position(node.Pos()), fset.Position(node.End())
		if n := end.Line - start.Line + 1; n > limit {
			out = append(out, Offence{Path: rel, Line: start.Line, Name: name, Lines: n, Limit: limit})
		}
	}
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok {
			// Function literals in package-level variables.
			ast.Inspect(decl, func(n ast.Node) bool {
				if lit, ok := n.(*ast.FuncLit); ok {
					check(lit, "func literal")
				}
				return true
			})
			continue
		}
		name := funcName(fd)
		check(fd, name)
		if fd.Body == nil {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if lit, ok := n.(*ast.FuncLit); ok {
				check(lit, "func literal in "+name)
			}
			return true
		})
	}
	return out
}

// funcName is "Recv.Name" for a method and "Name" otherwise.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.IndexExpr:
			t = x.X
			continue
		case *ast.IndexListExpr:
			t = x.X
			continue
		case *ast.Ident:
			return x.Name + "." + fd.Name.Name
		}
		return fd.Name.Name
	}
}
