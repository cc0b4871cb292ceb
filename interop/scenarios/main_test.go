package scenarios

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs all scenarios at once unless -parallel is given: they spend
// their time waiting for Node processes and servers to start, and with the
// default (GOMAXPROCS, 2 on the CI machines) the package would take the sum
// of its scenarios' halves.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}
