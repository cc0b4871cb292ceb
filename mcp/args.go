package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
)

// argChecks holds the input schema of each tool, to check the arguments of
// a call before the SDK does: the SDK's schema validator answers in its own
// terms ("validating root: validating /properties/after: type: x has type
// \"string\", want \"integer\""), which an assistant or a person reads
// less easily than "after must be a whole number, not \"x\"".
type argChecks map[string]*jsonschema.Schema

// middleware answers a tools/call whose arguments do not fit the tool's
// input schema with a tool error in plain words; other calls pass on.
func (c argChecks) middleware(next sdkmcp.MethodHandler) sdkmcp.MethodHandler {
	return func(ctx context.Context, method string, req sdkmcp.Request) (sdkmcp.Result, error) {
		if method != "tools/call" {
			return next(ctx, method, req)
		}
		call, ok := req.(*sdkmcp.CallToolRequest)
		if !ok || call.Params == nil {
			return next(ctx, method, req)
		}
		s := c[call.Params.Name]
		if s == nil {
			return next(ctx, method, req)
		}
		// The SDK applies schema defaults by writing into the arguments, and
		// panics on absent ones: give it an empty object.
		if t := bytes.TrimSpace(call.Params.Arguments); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			call.Params.Arguments = json.RawMessage("{}")
		}
		if msg := checkArgs(call.Params.Name, s, call.Params.Arguments); msg != "" {
			var res sdkmcp.CallToolResult
			res.SetError(fmt.Errorf("%s", msg))
			return &res, nil
		}
		return next(ctx, method, req)
	}
}

// checkArgs returns what is wrong with the arguments of tool, or "".
func checkArgs(tool string, s *jsonschema.Schema, raw json.RawMessage) string {
	names := propertyNames(s)
	takes := fmt.Sprintf("%s takes %s", tool, strings.Join(names, ", "))
	if len(names) == 0 {
		takes = tool + " takes no arguments"
	}
	args := map[string]json.RawMessage{}
	if t := bytes.TrimSpace(raw); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		if t[0] != '{' || json.Unmarshal(t, &args) != nil {
			return fmt.Sprintf("the arguments must be a JSON object; %s", takes)
		}
	}
	for _, name := range sortedKeys(args) {
		if s.Properties[name] == nil {
			return fmt.Sprintf("unknown argument %q; %s", name, takes)
		}
	}
	for _, name := range s.Required {
		if _, ok := args[name]; !ok {
			if d := s.Properties[name].Description; d != "" {
				return fmt.Sprintf("%s is required: %s", name, d)
			}
			return name + " is required"
		}
	}
	for _, name := range names {
		v, ok := args[name]
		if !ok {
			continue
		}
		if msg := checkValue(name, s.Properties[name], v); msg != "" {
			return msg
		}
	}
	return ""
}

// checkValue checks one argument against its property schema.
func checkValue(name string, p *jsonschema.Schema, raw json.RawMessage) string {
	types := p.Types
	if p.Type != "" {
		types = []string{p.Type}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Sprintf("%s is not a JSON value", name)
	}
	if len(types) > 0 && !slices.ContainsFunc(types, func(t string) bool { return hasType(v, t) }) {
		want := make([]string, len(types))
		for i, t := range types {
			want[i] = typeWords(t)
		}
		return fmt.Sprintf("%s must be %s, not %s", name, strings.Join(want, " or "), shortJSON(raw))
	}
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		lo, hi := p.Minimum, p.Maximum
		switch {
		case lo != nil && hi != nil && (f < *lo || f > *hi):
			return fmt.Sprintf("%s must be between %s and %s, not %s", name, number(*lo), number(*hi), n)
		case lo != nil && f < *lo:
			return fmt.Sprintf("%s must be at least %s, not %s", name, number(*lo), n)
		case hi != nil && f > *hi:
			return fmt.Sprintf("%s must be at most %s, not %s", name, number(*hi), n)
		}
	}
	return ""
}

// hasType reports whether the decoded JSON value v is of JSON Schema type t.
func hasType(v any, t string) bool {
	switch v := v.(type) {
	case nil:
		return t == "null"
	case bool:
		return t == "boolean"
	case string:
		return t == "string"
	case json.Number:
		if t == "number" {
			return true
		}
		if t != "integer" {
			return false
		}
		if _, err := v.Int64(); err == nil {
			return true
		}
		f, err := v.Float64()
		return err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53
	case []any:
		return t == "array"
	case map[string]any:
		return t == "object"
	}
	return false
}

// typeWords names a JSON Schema type for a sentence.
func typeWords(t string) string {
	switch t {
	case "integer":
		return "a whole number"
	case "number":
		return "a number"
	case "string":
		return "a string"
	case "boolean":
		return "true or false"
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "null":
		return "null"
	}
	return t
}

// shortJSON shows a value in a message, cut when long.
func shortJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		buf.Reset()
		buf.Write(raw)
	}
	s := buf.String()
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

func number(f float64) string { return fmt.Sprint(f) }

// propertyNames lists the properties of s in their declared order.
func propertyNames(s *jsonschema.Schema) []string {
	names := slices.Clone(s.PropertyOrder)
	for _, n := range sortedKeys(s.Properties) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
