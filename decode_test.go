package livestore

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// memConn opens a private in-memory SQLite database, closed with the test.
func memConn(t *testing.T) *sqlite.Conn {
	t.Helper()
	c, err := sqlite.Open(":memory:", sqlite.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// decodeInto runs `SELECT expr` and decodes its one column with setValue
// into a new value of dst's type, returned.
func decodeInto(t *testing.T, c *sqlite.Conn, expr string, args []any, typ reflect.Type) (any, error) {
	t.Helper()
	dst := reflect.New(typ).Elem()
	var decodeErr error
	rows := 0
	err := c.Query("SELECT "+expr, args, func(r *sqlite.Row) error {
		rows++
		decodeErr = setValue(dst, r, 0)
		return nil
	})
	if err != nil {
		t.Fatalf("SELECT %s: %v", expr, err)
	}
	if rows != 1 {
		t.Fatalf("SELECT %s: %d rows", expr, rows)
	}
	return dst.Interface(), decodeErr
}

type (
	namedString string
	point       struct {
		X int `json:"x"`
		Y int `json:"y"`
	}
)

func ptr[T any](v T) *T { return &v }

func TestSetValue(t *testing.T) {
	c := memConn(t)
	stamp := time.Date(2024, 5, 1, 10, 20, 30, 123e6, time.UTC)
	tests := []struct {
		name    string
		expr    string
		args    []any
		want    any          // decoded value; its type is the destination
		into    reflect.Type // the destination, when want's type is not
		wantErr string       // part of the error, when decoding must fail
	}{
		// text
		{name: "text", expr: "'hello'", want: "hello"},
		{name: "text into named string", expr: "'hi'", want: namedString("hi")},
		{name: "integer as text", expr: "42", want: "42"},
		{name: "null text", expr: "NULL", want: ""},
		// integer
		{name: "int64", expr: "42", want: int64(42)},
		{name: "int", expr: "-7", want: -7},
		{name: "int8", expr: "127", want: int8(127)},
		{name: "int from real truncates", expr: "3.9", want: 3},
		{name: "int from numeric text", expr: "'12'", want: int32(12)},
		{name: "int8 overflow", expr: "300", want: int8(0), wantErr: "300 overflows int8"},
		{name: "uint16", expr: "65535", want: uint16(65535)},
		{name: "uint16 overflow", expr: "65536", want: uint16(0), wantErr: "65536 overflows uint16"},
		{name: "negative uint", expr: "-1", want: uint(0), wantErr: "-1 overflows uint"},
		{name: "null int", expr: "NULL", want: int64(0)},
		// real
		{name: "float64", expr: "1.5", want: 1.5},
		{name: "float32", expr: "0.25", want: float32(0.25)},
		{name: "float from integer", expr: "2", want: 2.0},
		// boolean
		{name: "bool 1", expr: "1", want: true},
		{name: "bool 0", expr: "0", want: false},
		{name: "bool from real", expr: "0.5", want: true},
		{name: "bool from text true", expr: "'true'", want: true},
		{name: "bool from text 1", expr: "'1'", want: true},
		{name: "bool from other text", expr: "'yes'", want: false},
		{name: "bool from blob", expr: "X'01'", want: false, wantErr: "cannot read a bool from a blob"},
		// datetime
		{name: "time from ISO text", expr: "?", args: []any{stamp}, want: stamp},
		{name: "time from offset text", expr: "'2024-05-01T12:20:30.123+02:00'", want: time.Date(2024, 5, 1, 12, 20, 30, 123e6, time.FixedZone("", 7200))},
		{name: "time from Unix ms", expr: "?", args: []any{stamp.UnixMilli()}, want: stamp},
		{name: "time from bad text", expr: "'yesterday'", want: time.Time{}, wantErr: `cannot parse "yesterday"`},
		{name: "time from real", expr: "1.5", want: time.Time{}, wantErr: "cannot read a time from"},
		{name: "null time", expr: "NULL", want: time.Time{}},
		// json
		{name: "raw JSON", expr: `'{"a":1}'`, want: json.RawMessage(`{"a":1}`)},
		{name: "JSON slice", expr: `'["a","b"]'`, want: []string{"a", "b"}},
		{name: "JSON map", expr: `'{"a":1}'`, want: map[string]int{"a": 1}},
		{name: "JSON struct", expr: `'{"x":1,"y":2}'`, want: point{1, 2}},
		{name: "JSON array", expr: `'[3,4]'`, want: [2]int{3, 4}},
		{name: "bad JSON", expr: `'{"x":'`, want: point{}, wantErr: "unexpected end of JSON input"},
		{name: "JSON of the wrong shape", expr: `'"text"'`, want: []int(nil), wantErr: "cannot unmarshal string"},
		// blob
		{name: "blob", expr: "X'0102FF'", want: []byte{1, 2, 0xff}},
		{name: "null blob", expr: "NULL", want: []byte(nil)},
		// nullable: pointers
		{name: "pointer to text", expr: "'x'", want: ptr("x")},
		{name: "pointer to int", expr: "5", want: ptr(int64(5))},
		{name: "pointer to time", expr: "?", args: []any{stamp}, want: &stamp},
		{name: "null pointer", expr: "NULL", want: (*string)(nil)},
		{name: "pointer to a failing value", expr: "300", want: (*int8)(nil), wantErr: "overflows int8"},
		// interfaces
		{name: "any from integer", expr: "5", into: reflect.TypeFor[any](), want: any(int64(5))},
		{name: "any from real", expr: "2.5", into: reflect.TypeFor[any](), want: any(2.5)},
		{name: "any from text", expr: "'s'", into: reflect.TypeFor[any](), want: any("s")},
		{name: "any from blob", expr: "X'01'", into: reflect.TypeFor[any](), want: any([]byte{1})},
		{name: "interface with methods", expr: "'s'", into: reflect.TypeFor[fmt.Stringer](), wantErr: "cannot decode into fmt.Stringer"},
		// kinds that hold no column value
		{name: "channel", expr: "1", want: (chan int)(nil), wantErr: "cannot decode into chan int"},
		{name: "complex", expr: "1", want: complex128(0), wantErr: "cannot decode into complex128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ := tt.into
			if typ == nil {
				typ = reflect.TypeOf(tt.want)
			}
			got, err := decodeInto(t, c, tt.expr, tt.args, typ)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SELECT %s into %s: err = %v, want one containing %q", tt.expr, typ, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SELECT %s into %s: %v", tt.expr, typ, err)
			}
			if !equalValues(got, tt.want) {
				t.Fatalf("SELECT %s into %s = %#v, want %#v", tt.expr, typ, got, tt.want)
			}
		})
	}
}

// equalValues compares decoded values, times by instant and offset.
func equalValues(got, want any) bool {
	if gt, ok := got.(time.Time); ok {
		wt, ok := want.(time.Time)
		_, gotOff := gt.Zone()
		_, wantOff := wt.Zone()
		return ok && gt.Equal(wt) && gotOff == wantOff
	}
	if gp, ok := got.(*time.Time); ok {
		wp, ok := want.(*time.Time)
		return ok && (gp == nil) == (wp == nil) && (gp == nil || equalValues(*gp, *wp))
	}
	return reflect.DeepEqual(got, want)
}

// decodeRows decodes every row of query into Ts through a row decoder, as
// Query does.
func decodeRows[T any](t *testing.T, c *sqlite.Conn, query string) ([]T, error) {
	t.Helper()
	dec := newRowDecoder[T](&decoderCache{})
	var out []T
	err := c.Query(query, nil, func(r *sqlite.Row) error { return dec.decode(r, &out) })
	return out, err
}

func TestDecodeRowsIntoStructs(t *testing.T) {
	c := memConn(t)
	type Base struct {
		ID string `db:"id"`
	}
	type row struct {
		Base
		Title   string    `json:"title"`
		Count   int       // matched by name, case-insensitively
		Done    bool      `db:"done"`
		Skipped string    `db:"-"`
		When    time.Time `db:"when"`
		Note    *string   `db:"note"`
		Tags    []string  `db:"tags"`
		hidden  string
	}
	got, err := decodeRows[row](t, c, `SELECT 'a' AS id, 't' AS title, 3 AS COUNT, 1 AS done, 'x' AS Skipped,
		'2024-05-01T10:20:30.000Z' AS "when", NULL AS note, '["p","q"]' AS tags, 'h' AS hidden, 'extra' AS unknown
		UNION ALL SELECT 'b', NULL, 4, 'true', NULL, 0, 'n', '[]', NULL, NULL`)
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{Base: Base{ID: "a"}, Title: "t", Count: 3, Done: true, When: time.Date(2024, 5, 1, 10, 20, 30, 0, time.UTC), Tags: []string{"p", "q"}},
		{Base: Base{ID: "b"}, Count: 4, Done: true, When: time.UnixMilli(0).UTC(), Note: ptr("n"), Tags: []string{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows = %+v\nwant   %+v", got, want)
	}
}

func TestDecodeRowsIntoMapsAndScalars(t *testing.T) {
	c := memConn(t)
	maps, err := decodeRows[map[string]any](t, c, `SELECT 1 AS i, 1.5 AS f, 's' AS s, X'00' AS b, NULL AS n`)
	if err != nil {
		t.Fatal(err)
	}
	wantMap := map[string]any{"i": int64(1), "f": 1.5, "s": "s", "b": []byte{0}, "n": nil}
	if len(maps) != 1 || !reflect.DeepEqual(maps[0], wantMap) {
		t.Fatalf("maps = %#v, want [%#v]", maps, wantMap)
	}
	counts, err := decodeRows[map[string]int](t, c, `SELECT 1 AS a, 2 AS b`)
	if err != nil || !reflect.DeepEqual(counts, []map[string]int{{"a": 1, "b": 2}}) {
		t.Fatalf("typed map rows = %v, %v", counts, err)
	}
	// Any other type takes the first column.
	ids, err := decodeRows[string](t, c, `SELECT 'x', 'ignored' UNION ALL SELECT 'y', 'ignored'`)
	if err != nil || !reflect.DeepEqual(ids, []string{"x", "y"}) {
		t.Fatalf("scalar rows = %v, %v", ids, err)
	}
}

func TestDecodeRowFailureNamesTheColumn(t *testing.T) {
	c := memConn(t)
	type row struct {
		Small int8 `db:"small"`
	}
	got, err := decodeRows[row](t, c, `SELECT 1 AS small UNION ALL SELECT 1000`)
	if err == nil || !strings.Contains(err.Error(), `column "small"`) || !strings.Contains(err.Error(), "overflows int8") {
		t.Fatalf("err = %v, want an overflow naming column small", err)
	}
	if len(got) != 1 {
		t.Fatalf("decoded %d rows before the failure, want the 1 good one", len(got))
	}
}
