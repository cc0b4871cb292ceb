package difftest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// A Transcript is the normalised record of one script run: one line per
// action or received message, "<verb> <conn> <text>", where verb is
// open/send/quiet/close (what the script did), recv (a message received in a
// Recv or Quiet step) or late (a message that arrived after the last step).
type Transcript struct {
	Script string
	About  string
	Lines  []string
	// Notes[i] are comments for Lines[i] in a golden file (free-form texts
	// that normalising replaced); they are not compared.
	Notes map[int][]string
}

func (t *Transcript) add(verb, conn, text string) {
	line := verb + " " + conn
	if text != "" {
		line += " " + text
	}
	t.Lines = append(t.Lines, line)
}

func (t *Transcript) addMessages(conn string, ms []Message) {
	for _, m := range sortMessages(ms) {
		t.add("recv", conn, m.Text)
		t.note(m.Notes)
	}
}

// note attaches notes to the last line.
func (t *Transcript) note(notes []string) {
	if len(notes) == 0 {
		return
	}
	if t.Notes == nil {
		t.Notes = map[int][]string{}
	}
	i := len(t.Lines) - 1
	t.Notes[i] = append(t.Notes[i], notes...)
}

// Golden renders the transcript as a golden file: comment lines, then the lines.
func (t *Transcript) Golden(source string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s: %s\n", t.Script, t.About)
	fmt.Fprintf(&b, "# Recorded from %s; regenerate with: go test ./interop/difftest -run TestDifferential -update\n", source)
	for i, l := range t.Lines {
		b.WriteString(l)
		b.WriteByte('\n')
		for _, n := range t.Notes[i] {
			fmt.Fprintf(&b, "#   ^ %s\n", n)
		}
	}
	return b.Bytes()
}

// GoldenPath is the golden file of script for target: testdata/<script>.<target>.golden
// if it exists (a reviewed, deliberate difference of that target), else
// testdata/<script>.golden (the reference server's transcript).
func GoldenPath(dir, script, target string) string {
	specific := filepath.Join(dir, script+"."+target+".golden")
	if _, err := os.Stat(specific); err == nil {
		return specific
	}
	return filepath.Join(dir, script+".golden")
}

// ReadGolden returns the transcript lines of a golden file.
func ReadGolden(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// Compare lists the differences between two transcripts, field by field for
// JSON lines; no differences means none were found.
func Compare(got, want []string) []string {
	var diffs []string
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			diffs = append(diffs, fmt.Sprintf("line %d missing, want: %s", i+1, want[i]))
		case i >= len(want):
			diffs = append(diffs, fmt.Sprintf("line %d extra, got: %s", i+1, got[i]))
		case got[i] != want[i]:
			diffs = append(diffs, compareLine(i+1, got[i], want[i]))
		}
		if len(diffs) >= 20 {
			diffs = append(diffs, "(more differences not shown)")
			break
		}
	}
	return diffs
}

func compareLine(n int, got, want string) string {
	gHead, gJSON := splitLine(got)
	wHead, wJSON := splitLine(want)
	var gv, wv any
	if gHead == wHead && json.Unmarshal([]byte(gJSON), &gv) == nil && json.Unmarshal([]byte(wJSON), &wv) == nil {
		var fields []string
		diffJSON("", gv, wv, &fields)
		if len(fields) > 0 {
			return fmt.Sprintf("line %d (%s): %s\n    got:  %s\n    want: %s",
				n, gHead, strings.Join(fields, "; "), clip(got), clip(want))
		}
	}
	return fmt.Sprintf("line %d:\n    got:  %s\n    want: %s", n, clip(got), clip(want))
}

// splitLine separates "<verb> <conn>" from the rest of a transcript line.
func splitLine(l string) (head, rest string) {
	f := strings.SplitN(l, " ", 3)
	if len(f) < 3 {
		return l, ""
	}
	return f[0] + " " + f[1], f[2]
}

// diffJSON appends "path: got X, want Y" for each differing leaf (at most 10).
func diffJSON(path string, got, want any, out *[]string) {
	if len(*out) >= 10 {
		return
	}
	at := path
	if at == "" {
		at = "(top)"
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range g {
			keys[k] = true
		}
		for k := range w {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			gv, gok := g[k]
			wv, wok := w[k]
			switch {
			case !gok:
				*out = append(*out, fmt.Sprintf("%s.%s: missing, want %s", path, k, clip(marshal(wv))))
			case !wok:
				*out = append(*out, fmt.Sprintf("%s.%s: unexpected, got %s", path, k, clip(marshal(gv))))
			default:
				diffJSON(path+"."+k, gv, wv, out)
			}
		}
		return
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		if len(g) != len(w) {
			*out = append(*out, fmt.Sprintf("%s: %d elements, want %d", at, len(g), len(w)))
		}
		for i := 0; i < len(g) && i < len(w); i++ {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], out)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		*out = append(*out, fmt.Sprintf("%s: got %s, want %s", at, clip(marshal(got)), clip(marshal(want))))
	}
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
