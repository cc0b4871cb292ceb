// Command livestore is the LiveStore command-line tool. Each subcommand
// lives in its own file and only wires flags to library calls:
//
//	livestore serve    run the sync server (serve.go)
//	livestore inspect  list or summarise stores, or a client store directory (inspect.go)
//	livestore export   write a sync storage's events as JSON lines (export.go)
//	livestore import   append exported events to a sync storage (import.go)
//	livestore query    read-only SQL over a client store directory (query.go)
//	livestore devtools the devtools page over a sync storage (devtools.go)
//	livestore mcp      serve MCP tools over stdio for AI assistants (mcp.go)
//	livestore token    mint an HS256 token for stores (token.go)
//
// Flags shared by several commands have their own files (storageflags.go,
// authflags.go, deploy.go, flagset.go). The work itself lives in the
// library packages (syncserver, inspect, devtools, mcp, jwtauth); the
// command keeps only what belongs to a process: flags, listeners and
// their admin gate (deploy.go, admin.go), the import file format's checks
// (import.go), stdio for MCP (mcpstdio.go) and printing.
//
// Run "livestore help" for the list and "livestore <command> -h" for flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand. run gets the arguments after the command name
// and returns flag.ErrHelp after printing usage for -h.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the subcommand table; add new subcommands here.
func commands() []command {
	return []command{
		{name: "serve", summary: "run the sync server (WebSocket protocol of @livestore/sync-cf)", run: runServe},
		{name: "inspect", summary: "list a sync storage's stores, summarise one, or summarise a client store directory", run: runInspect},
		{name: "export", summary: "write stores' events from a sync storage as JSON lines", run: runExport},
		{name: "import", summary: "append exported events to a sync storage (e.g. SQLite to PostgreSQL)", run: runImport},
		{name: "devtools", summary: "serve the devtools page over a sync storage, without a sync server", run: runDevtools},
		{name: "query", summary: "run read-only SQL over a client store directory", run: runQuery},
		{name: "mcp", summary: "serve MCP tools over stdio for AI assistants (read-only unless --allow-writes)", run: runMCP},
		{name: "token", summary: "mint an HS256 token for stores (development and tests)", run: runToken},
	}
}

// errUsage marks an error caused by wrong arguments (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "livestore %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "livestore %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "livestore: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: livestore <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "livestore <command> -h" for the flags of a command.`)
}
