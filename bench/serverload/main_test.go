package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSmoke runs a tiny load to keep the program working.
func TestSmoke(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"--duration", "500ms", "--clients", "2", "--stores", "1", "--live", "3", "--batch", "10", "--rate", "400"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"events/s", "push latency", "fan-out latency"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
