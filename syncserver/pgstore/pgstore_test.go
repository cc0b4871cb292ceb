package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/livestore-go/livestore/syncserver"
	"github.com/livestore-go/livestore/syncserver/pgstore"
	"github.com/livestore-go/livestore/syncserver/pgstore/pgtest"
	"github.com/livestore-go/livestore/syncserver/storagetest"
)

func TestMain(m *testing.M) {
	if schema := os.Getenv(crashEnv); schema != "" {
		appendUntilKilled(schema)
		return
	}
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) syncserver.Storage { return pgtest.Open(t, pgtest.Schema(t)) })
}

func TestWatch(t *testing.T) {
	schema := pgtest.Schema(t)
	a := pgtest.Open(t, schema)
	b := pgtest.Open(t, schema)
	ctx := t.Context()

	type change struct {
		store string
		head  int64
	}
	changes := make(chan change, 16)
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Watch(watchCtx, func(store string, head int64) { changes <- change{store, head} })
	}()
	defer func() {
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v", err)
		}
	}()
	if c := <-changes; c != (change{"", 0}) {
		t.Fatalf("first change = %+v, want the catch-all", c)
	}
	if err := a.Append(ctx, "w", storagetest.Chain(0, 3, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		if c != (change{"w", 3}) {
			t.Fatalf("change = %+v, want {w 3}", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	// A refused append notifies nobody.
	_ = a.Append(ctx, "w", storagetest.Chain(0, 1, "c"), time.Now())
	if err := a.Append(ctx, "w", storagetest.Chain(3, 1, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if c := <-changes; c != (change{"w", 4}) {
		t.Fatalf("change = %+v, want {w 4}", c)
	}
}

func TestSchemaName(t *testing.T) {
	for _, bad := range []string{"Public", "1abc", "a-b", "x;drop", ""} {
		if bad == "" {
			continue // empty means public
		}
		if _, err := pgstore.Open(t.Context(), pgtest.URL(t), pgstore.Options{Schema: bad}); err == nil {
			t.Errorf("schema %q accepted", bad)
		}
	}
}

// Two processes on one schema (two Store values here) report the same
// backend id for a store that does not exist yet, and a read-only view
// agrees with both.
func TestShared(t *testing.T) {
	schema := pgtest.Schema(t)
	a := pgtest.Open(t, schema)
	b := pgtest.Open(t, schema)
	storagetest.Shared(t, a, b)

	r, err := pgstore.OpenReadOnly(t.Context(), pgtest.URL(t), pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, store := range []string{"shared-1", "never"} {
		want, _ := a.BackendID(t.Context(), store)
		if got, err := r.BackendID(t.Context(), store); err != nil || got != want {
			t.Fatalf("read-only backend id of %s = %q, %v; want %q", store, got, err, want)
		}
	}
}

// admin is a plain connection to the test database, closed when the test
// ends.
func admin(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func storageKind(t *testing.T, err error, want syncserver.StorageErrorKind) {
	t.Helper()
	var se *syncserver.StorageError
	if !errors.As(err, &se) || se.Kind != want {
		t.Fatalf("err = %v; want a *syncserver.StorageError of kind %s", err, want)
	}
}

// withParams returns the test URL with PostgreSQL run-time parameters set
// for every connection.
func withParams(t *testing.T, user string, params string) string {
	t.Helper()
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		u.User = url.User(user)
	}
	q := u.Query()
	if params != "" {
		q.Set("options", params)
	}
	// pgx reads "+" literally: spaces must be %20.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

func TestOpenReadOnly(t *testing.T) {
	schema := pgtest.Schema(t)
	w := pgtest.Open(t, schema)
	ctx := t.Context()
	if err := w.Append(ctx, "todos", storagetest.Chain(0, 4, "c"), time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := pgstore.OpenReadOnly(ctx, pgtest.URL(t), pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stores, err := r.Stores(ctx)
	if err != nil || len(stores) != 1 || stores[0].Head != 4 {
		t.Fatalf("stores = %+v, %v", stores, err)
	}
	if evs, err := r.Read(ctx, "todos", 0, 10, 10); err != nil || len(evs) != 4 {
		t.Fatalf("read = %d events, %v", len(evs), err)
	}
	// PostgreSQL itself refuses the writes (SQLSTATE 25006).
	storageKind(t, r.Append(ctx, "todos", storagetest.Chain(4, 1, "c"), time.Now()), syncserver.StorageReadOnly)
	storageKind(t, r.Append(ctx, "new", storagetest.Chain(0, 1, "c"), time.Now()), syncserver.StorageReadOnly)
	storageKind(t, r.CreateStore(ctx, "new", "id"), syncserver.StorageReadOnly)
	if head, _ := w.Head(ctx, "todos"); head != 4 {
		t.Fatalf("head after refused writes = %d", head)
	}

	_, err = pgstore.OpenReadOnly(ctx, pgtest.URL(t), pgstore.Options{Schema: "lstest_no_such_schema"})
	if !errors.Is(err, pgstore.ErrNotStorage) || !strings.Contains(err.Error(), "not a livestore sync storage") {
		t.Fatalf("OpenReadOnly of an empty schema: %v", err)
	}
	var exists bool
	if err := admin(t).QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'lstest_no_such_schema')").Scan(&exists); err != nil || exists {
		t.Fatalf("OpenReadOnly created the schema (%v)", err)
	}
}

// Open fails at once, classified, where the server could never store a
// push: on read-only connections and for a user who may only read.
func TestOpenCannotWrite(t *testing.T) {
	schema := pgtest.Schema(t)
	pgtest.Open(t, schema)
	ctx := t.Context()
	db := admin(t)

	_, err := pgstore.Open(ctx, withParams(t, "", "-c default_transaction_read_only=on"), pgstore.Options{Schema: schema})
	storageKind(t, err, syncserver.StorageReadOnly)

	role := schema + "_reader"
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"GRANT USAGE ON SCHEMA " + schema + " TO " + role,
		"GRANT SELECT ON ALL TABLES IN SCHEMA " + schema + " TO " + role,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := db.Exec(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	_, err = pgstore.Open(ctx, withParams(t, role, ""), pgstore.Options{Schema: schema})
	storageKind(t, err, syncserver.StorageReadOnly)
	if !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("error %q does not say why", err)
	}
	// The same user can still read with OpenReadOnly.
	r, err := pgstore.OpenReadOnly(ctx, withParams(t, role, ""), pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Stores(ctx); err != nil {
		t.Fatal(err)
	}
}

// A really full disk fails appends with StorageFull (SQLSTATE 53100): the
// schema's tables live in a tablespace on a 1 MiB tmpfs. It needs root (to
// mount) and a PostgreSQL server on this machine.
func TestDiskFull(t *testing.T) {
	ctx := t.Context()
	dir, err := os.MkdirTemp("", "lstest-tablespace-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs (this test needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("this test needs the PostgreSQL server on this machine, running as user postgres: %v", err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}

	db := admin(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	space := "lstest_space_" + hex.EncodeToString(b[:])
	if _, err := db.Exec(ctx, "CREATE TABLESPACE "+space+" LOCATION '"+dir+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec(context.Background(), "DROP TABLESPACE "+space); err != nil {
			t.Errorf("drop tablespace: %v", err)
		}
	})
	schema := pgtest.Schema(t) // dropped before the tablespace
	s, err := pgstore.Open(ctx, withParams(t, "", "-c default_tablespace="+space), pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	pad := strings.Repeat("x", 2000)
	var head int64
	var full error
	for range 1000 {
		batch := storagetest.Chain(head, 50, "c")
		for i := range batch {
			batch[i].Args = []byte(`{"pad":"` + pad + `"}`)
		}
		if full = s.Append(ctx, "big", batch, time.Now()); full != nil {
			break
		}
		head += 50
	}
	storageKind(t, full, syncserver.StorageFull)
	if !strings.Contains(full.Error(), "53100") {
		t.Errorf("error %q is not disk_full", full)
	}
	if got, err := s.Head(ctx, "big"); err != nil || got != head {
		t.Fatalf("head = %d, %v; want %d, the last acknowledged", got, err, head)
	}
}
