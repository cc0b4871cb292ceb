package livestore_test

import (
	"strings"
	"testing"

	"github.com/livestore-go/livestore/internal/sqlite"
)

func writeForeignDB(t *testing.T, path string) {
	t.Helper()
	c, err := sqlite.Open(path, sqlite.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"); err != nil {
		t.Fatal(err)
	}
}

func stringReader(s string) *strings.Reader { return strings.NewReader(s) }
