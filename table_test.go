package livestore

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

type (
	namedBool bool
	namedInt  int16
)

func TestEncodeValue(t *testing.T) {
	berlin := time.FixedZone("CEST", 2*3600)
	tests := []struct {
		name    string
		col     Column
		v       any
		want    any
		wantErr string // part of the error, when encoding must fail
	}{
		// text
		{name: "text", col: Text("c"), v: "hello", want: "hello"},
		{name: "named string", col: Text("c"), v: namedString("hi"), want: "hi"},
		{name: "pointer to text", col: Text("c"), v: ptr("p"), want: "p"},
		{name: "number as text", col: Text("c"), v: 5, wantErr: `column "c" (text): cannot store int`},
		// integer
		{name: "int", col: Integer("c"), v: 5, want: int64(5)},
		{name: "int8", col: Integer("c"), v: int8(-3), want: int64(-3)},
		{name: "named int", col: Integer("c"), v: namedInt(7), want: int64(7)},
		{name: "uint32", col: Integer("c"), v: uint32(math.MaxUint32), want: int64(math.MaxUint32)},
		{name: "largest uint64 that fits", col: Integer("c"), v: uint64(math.MaxInt64), want: int64(math.MaxInt64)},
		{name: "uint64 overflow", col: Integer("c"), v: uint64(math.MaxInt64) + 1, wantErr: "cannot store uint64"},
		{name: "whole float", col: Integer("c"), v: 3.0, want: int64(3)},
		{name: "fractional float", col: Integer("c"), v: 3.5, wantErr: "cannot store float64"},
		{name: "text as integer", col: Integer("c"), v: "3", wantErr: `column "c" (integer): cannot store string`},
		// real
		{name: "float64", col: Real("c"), v: 1.25, want: 1.25},
		{name: "float32", col: Real("c"), v: float32(0.5), want: 0.5},
		{name: "int as real", col: Real("c"), v: 2, want: 2.0},
		{name: "text as real", col: Real("c"), v: "1.5", wantErr: `column "c" (real): cannot store string`},
		// boolean
		{name: "true", col: Boolean("c"), v: true, want: int64(1)},
		{name: "false", col: Boolean("c"), v: false, want: int64(0)},
		{name: "named bool", col: Boolean("c"), v: namedBool(true), want: int64(1)},
		{name: "pointer to bool", col: Boolean("c"), v: ptr(false), want: int64(0)},
		{name: "int as boolean", col: Boolean("c"), v: 1, wantErr: `column "c" (boolean): cannot store int`},
		// datetime
		{name: "time in UTC", col: DateTime("c"), v: time.Date(2024, 5, 1, 10, 20, 30, 123456789, time.UTC), want: "2024-05-01T10:20:30.123Z"},
		{name: "time in a zone", col: DateTime("c"), v: time.Date(2024, 5, 1, 12, 20, 30, 0, berlin), want: "2024-05-01T10:20:30.000Z"},
		{name: "ISO text", col: DateTime("c"), v: "2024-05-01T12:20:30+02:00", want: "2024-05-01T10:20:30.000Z"},
		{name: "bad time text", col: DateTime("c"), v: "May 1st", wantErr: `column "c": "May 1st" is not an ISO-8601 time`},
		{name: "number as datetime", col: DateTime("c"), v: int64(1714558830123), wantErr: `column "c" (datetime): cannot store int64`},
		// json
		{name: "JSON object", col: JSON("c"), v: map[string]int{"a": 1}, want: `{"a":1}`},
		{name: "JSON struct", col: JSON("c"), v: point{1, 2}, want: `{"x":1,"y":2}`},
		{name: "JSON string", col: JSON("c"), v: "s", want: `"s"`},
		{name: "raw JSON", col: JSON("c"), v: json.RawMessage(`[1, 2]`), want: `[1, 2]`},
		{name: "bad raw JSON", col: JSON("c"), v: json.RawMessage(`{`), wantErr: `column "c": invalid JSON`},
		{name: "value JSON cannot hold", col: JSON("c"), v: make(chan int), wantErr: "unsupported type: chan int"},
		{name: "NaN", col: JSON("c"), v: math.NaN(), wantErr: "unsupported value: NaN"},
		// blob
		{name: "bytes", col: Blob("c"), v: []byte{0, 1}, want: []byte{0, 1}},
		{name: "text as blob", col: Blob("c"), v: "ab", want: []byte("ab")},
		{name: "number as blob", col: Blob("c"), v: 1, wantErr: `column "c" (blob): cannot store int`},
		// null
		{name: "nil into nullable", col: Text("c").Nullable(), v: nil, want: nil},
		{name: "nil pointer into nullable", col: Integer("c").Nullable(), v: (*int)(nil), want: nil},
		{name: "nil bytes into nullable", col: Blob("c").Nullable(), v: []byte(nil), want: nil},
		{name: "nil into nullable JSON", col: JSON("c").Nullable(), v: nil, want: nil},
		{name: "nil into JSON", col: JSON("c"), v: nil, want: "null"},
		{name: "nil into not nullable", col: Text("c"), v: nil, wantErr: `column "c" is not nullable`},
		{name: "nil pointer into not nullable", col: DateTime("c"), v: (*time.Time)(nil), wantErr: "not nullable"},
		{name: "nil bytes into not nullable", col: Blob("c"), v: []byte(nil), wantErr: "not nullable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeValue(tt.col, tt.v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("encode %#v: err = %v, want one containing %q", tt.v, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("encode %#v: %v", tt.v, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("encode %#v = %#v (%T), want %#v (%T)", tt.v, got, got, tt.want, tt.want)
			}
		})
	}
}

// TestEncodeDecodeRoundTrip stores values of every column type as the store
// writes them and reads them back into their Go type.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	c := memConn(t)
	tests := []struct {
		col Column
		v   any
	}{
		{Text("c"), "héllo"},
		{Integer("c"), int64(math.MinInt64)},
		{Integer("c"), uint16(65535)},
		{Real("c"), -0.125},
		{Boolean("c"), true},
		{Boolean("c"), false},
		{DateTime("c"), time.Date(2024, 2, 29, 23, 59, 59, 999e6, time.UTC)},
		{JSON("c"), map[string][]int{"a": {1, 2}}},
		{JSON("c"), point{-1, 1}},
		{Blob("c"), []byte{0, 0xff, 7}},
		{Text("c").Nullable(), (*string)(nil)},
		{Integer("c").Nullable(), ptr(int64(9))},
	}
	for _, tt := range tests {
		t.Run(tt.col.typ.String(), func(t *testing.T) {
			stored, err := encodeValue(tt.col, tt.v)
			if err != nil {
				t.Fatalf("encode %#v: %v", tt.v, err)
			}
			got, err := decodeInto(t, c, "?", []any{stored}, reflect.TypeOf(tt.v))
			if err != nil {
				t.Fatalf("decode %#v (stored as %#v): %v", tt.v, stored, err)
			}
			if !reflect.DeepEqual(got, tt.v) {
				t.Fatalf("round trip of %#v = %#v (stored as %#v)", tt.v, got, stored)
			}
		})
	}
}

func TestColumnTypes(t *testing.T) {
	tests := []struct {
		col      Column
		name     string
		sqlType  string
		def      any
		defValue string // the DEFAULT clause's literal
	}{
		{Text("c"), "text", "TEXT", "it's", `'it''s'`},
		{Integer("c"), "integer", "INTEGER", 42, "42"},
		{Real("c"), "real", "REAL", 0.5, "0.5"},
		{Boolean("c"), "boolean", "INTEGER", true, "1"},
		{JSON("c"), "json", "TEXT", []int{1}, "'[1]'"},
		{DateTime("c"), "datetime", "TEXT", time.UnixMilli(0), "'1970-01-01T00:00:00.000Z'"},
		{Blob("c"), "blob", "BLOB", []byte{0xab}, "X'AB'"},
		{Text("c").Nullable(), "text", "TEXT", nil, "NULL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.col.Type().String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			if got := tt.col.Type().sqlType(); got != tt.sqlType {
				t.Errorf("sqlType() = %q, want %q", got, tt.sqlType)
			}
			tbl := NewTable("t", Text("id").PrimaryKey(), tt.col.Default(tt.def))
			if err := tbl.validate(); err != nil {
				t.Fatal(err)
			}
			want := `"c" ` + tt.sqlType
			if !tt.col.nullable {
				want += " NOT NULL"
			}
			want += " DEFAULT " + tt.defValue
			if ddl := tbl.ddl()[0]; !strings.Contains(ddl, want) {
				t.Fatalf("ddl = %s, want it to contain %s", ddl, want)
			}
		})
	}
	if got := ColumnType(99).String(); got != "column(99)" {
		t.Fatalf("unknown type String() = %q", got)
	}
}

func TestTableValidationOfDefaults(t *testing.T) {
	tbl := NewTable("t", Text("id").PrimaryKey(), Integer("n").Default("many"))
	err := tbl.validate()
	if err == nil || !strings.Contains(err.Error(), `table "t" column "n": default: column "n" (integer): cannot store string`) {
		t.Fatalf("validate = %v, want the default's encoding error", err)
	}
}
