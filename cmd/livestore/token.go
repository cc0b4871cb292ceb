package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/livestore-go/livestore/jwtauth"
)

// storeList is a repeatable --store flag.
type storeList []string

func (s *storeList) String() string { return fmt.Sprint([]string(*s)) }

func (s *storeList) Set(v string) error {
	if v == "" {
		return fmt.Errorf("empty store id")
	}
	*s = append(*s, v)
	return nil
}

const tokenUsage = `Usage: livestore token --secret-file F --store ID [--store ID2] [flags]

Prints an HS256 token (JWT) for the stores, signed with the secret, for
development and tests. A LiveStore app passes it as syncPayload: { authToken };
a Go client as Options.Payload or an Authorization: Bearer header.
`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		secretFile  string
		stores      storeList
		pullOnly    bool
		ttl         time.Duration
		issuer      string
		audience    string
		subject     string
		storesClaim string
	)
	fs := newFlagSet("token", tokenUsage, stderr)
	fs.StringVar(&secretFile, "secret-file", "", "file holding the HS256 secret (the one given to serve --auth-secret-file)")
	fs.Var(&stores, "store", "store id or \"prefix*\" pattern the token is for (repeatable)")
	fs.BoolVar(&pullOnly, "pull-only", false, "the token may pull but not push (scope \"livestore:pull\")")
	fs.DurationVar(&ttl, "ttl", jwtauth.DefaultTTL, "lifetime of the token")
	fs.StringVar(&issuer, "issuer", "", "issuer claim (iss), for serve --auth-issuer")
	fs.StringVar(&audience, "audience", "", "audience claim (aud), for serve --auth-audience")
	fs.StringVar(&subject, "subject", "", "subject claim (sub), e.g. a user id")
	fs.StringVar(&storesClaim, "stores-claim", jwtauth.DefaultStoresClaim, "name of the claim listing the stores, for serve --auth-stores-claim")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if secretFile == "" {
		return fmt.Errorf("%w: --secret-file is required", errUsage)
	}
	if len(stores) == 0 {
		return fmt.Errorf("%w: at least one --store is required", errUsage)
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: --ttl must be positive", errUsage)
	}
	secret, err := readSecretFile(secretFile, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return fmt.Errorf("--secret-file: %w", err)
	}
	tok, err := jwtauth.Mint(secret, jwtauth.MintOptions{
		Stores: stores, PullOnly: pullOnly, TTL: ttl,
		Issuer: issuer, Audience: audience, Subject: subject, StoresClaim: storesClaim,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
