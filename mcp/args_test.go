package mcp

import (
	"strings"
	"testing"
)

// Arguments that do not fit a tool's schema are answered in plain words,
// naming the argument, what it must be and what it was.
func TestArgumentErrorsInPlainWords(t *testing.T) {
	cs := connect(t, Options{Storage: newStorage(t), StoreDirs: []string{t.TempDir()}})
	for _, tt := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"read_events", map[string]any{}, "storeId is required: the store to read, as list_stores names it"},
		{"read_events", map[string]any{"storeId": 5}, "storeId must be a string, not 5"},
		{"read_events", map[string]any{"storeId": "a", "after": "x"}, `after must be a whole number, not "x"`},
		{"read_events", map[string]any{"storeId": "a", "after": 1.5}, "after must be a whole number, not 1.5"},
		{"read_events", map[string]any{"storeId": "a", "limit": 0}, "limit must be between 1 and 1000, not 0"},
		{"read_events", map[string]any{"storeId": "a", "limit": 5000}, "limit must be between 1 and 1000, not 5000"},
		{"read_events", map[string]any{"storeId": "a", "bogus": 1}, `unknown argument "bogus"; read_events takes storeId, after, limit`},
		{"client_store_query", map[string]any{"dir": 1, "sql": "SELECT 1"}, "dir must be a string, not 1"},
		{"client_store_events", map[string]any{"dir": "x", "after": 3}, "after must be a string, not 3"},
		{"list_stores", map[string]any{"after": []int{1}}, "after must be a string, not [1]"},
	} {
		msg := callFail(t, cs, tt.tool, tt.args)
		if msg != tt.want {
			t.Errorf("%s %v: %q, want %q", tt.tool, tt.args, msg, tt.want)
		}
		for _, jargon := range []string{"validating", "/properties/", "root", "has type"} {
			if strings.Contains(msg, jargon) {
				t.Errorf("%s %v: %q says %q", tt.tool, tt.args, msg, jargon)
			}
		}
	}
	// Good arguments still reach the tool: 2.0 is a whole number.
	var out readEventsOutput
	call(t, cs, "read_events", map[string]any{"storeId": "alpha", "limit": 2.0}, &out)
	if len(out.Events) != 2 {
		t.Errorf("limit 2.0: %+v", out)
	}
}
