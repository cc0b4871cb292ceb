package livestore_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestRootPackageHasNoTransportDependencies checks that the root package
// does not link a sync transport: an app that syncs picks one in package
// syncclient (or brings its own), and one that does not sync carries neither
// the WebSocket library nor the HTTP client code.
func TestRootPackageHasNoTransportDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/livestore-go/livestore").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !slices.Contains(deps, "github.com/livestore-go/livestore/syncproto") {
		t.Fatalf("go list -deps gave an implausible list (%d packages): %q", len(deps), deps)
	}
	for _, forbidden := range []string{
		"github.com/coder/websocket",
		"github.com/livestore-go/livestore/syncclient",
	} {
		if slices.Contains(deps, forbidden) {
			t.Errorf("the root package depends on %s", forbidden)
		}
	}
}
