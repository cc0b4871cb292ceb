package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/livestore-go/livestore/syncserver"
)

// authFlags are the authentication flags of serve.
type authFlags struct{}

// register adds the flags to fs.
func (a *authFlags) register(fs *flag.FlagSet) {}

// configured reports whether the flags ask for authentication.
func (a *authFlags) configured() bool { return false }

// build returns the server's AuthFunc (nil when not configured) and a
// function that releases what it holds.
func (a *authFlags) build(ctx context.Context, logger *slog.Logger) (syncserver.AuthFunc, func(), error) {
	return nil, func() {}, nil
}
