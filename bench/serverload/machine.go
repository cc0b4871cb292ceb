package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// machineDetails describes the machine for the matrix: CPU model and
// count, kernel, Go, PostgreSQL's version (if pgURL is set) and what an
// fsync costs in the temporary directory, where the SQLite storage lives.
func machineDetails(ctx context.Context, pgURL string) string {
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	pg := "PostgreSQL not used"
	if pgURL != "" {
		pg = postgresVersion(ctx, pgURL)
	}
	return fmt.Sprintf("%d CPUs (%s), %s, %s/%s, %s, %s; %s", runtime.NumCPU(), cpuModel(), kernel,
		runtime.GOOS, runtime.GOARCH, runtime.Version(), pg, fsyncCost())
}

// cpuModel is the model name in /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// postgresVersion asks the server at url for its version and the settings
// that make commits durable.
func postgresVersion(ctx context.Context, url string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Sprintf("PostgreSQL unreachable (%v)", err)
	}
	defer conn.Close(ctx)
	var version, fsync, syncCommit string
	err = conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')").
		Scan(&version, &fsync, &syncCommit)
	if err != nil {
		return fmt.Sprintf("PostgreSQL (version unknown: %v)", err)
	}
	return fmt.Sprintf("PostgreSQL %s (fsync=%s, synchronous_commit=%s)", version, fsync, syncCommit)
}

// fsyncCost measures writing 8 KiB to a file and fsyncing it, 50 times,
// in the temporary directory.
func fsyncCost() string {
	f, err := os.CreateTemp("", "serverload-fsync")
	if err != nil {
		return fmt.Sprintf("fsync not measured (%v)", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 8<<10)
	var d []time.Duration
	for i := range 50 {
		start := time.Now()
		if _, err := f.WriteAt(page, int64(i)*int64(len(page))); err != nil {
			return fmt.Sprintf("fsync not measured (%v)", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Sprintf("fsync not measured (%v)", err)
		}
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	r := func(x time.Duration) string { return x.Round(time.Microsecond).String() }
	return fmt.Sprintf("write of 8 KiB + fsync in %s: median %s, p90 %s (50 tries)", os.TempDir(), r(d[len(d)/2]), r(d[len(d)*9/10]))
}
