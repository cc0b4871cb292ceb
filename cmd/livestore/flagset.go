package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// newFlagSet returns the flag set of `livestore name`, reporting to stderr.
// Its -h prints usage (the usage lines, a blank line and what the command
// does, each line ending in a newline), a blank line and the flags.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("livestore "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	return fs
}

// parseNoArgs is parseFlags for a command that takes no positional
// arguments.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// parseFlags parses args with fs, mapping errors to errUsage. Flags may
// follow the positional arguments ("inspect todos --json"), as users type
// them; after "--" everything is positional. fs.Args() holds the positional
// arguments afterwards.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// Parse stops at the first non-flag argument, or consumes a "--"
		// and stops after it.
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	// A final parse of "--" and the positional arguments makes them
	// fs.Args() without reading any of them as a flag.
	return fs.Parse(append([]string{"--"}, pos...))
}

// newLogger returns a text logger to w at the --log-level given.
func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
