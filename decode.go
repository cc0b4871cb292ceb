package livestore

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// Rows decode into T by column name:
//   - a struct: each column goes to the field tagged `db:"name"`, else the
//     field whose json tag names it, else the field whose name matches
//     case-insensitively; columns without a field are ignored;
//   - map[string]any: every column, as int64, float64, string, []byte or nil;
//   - any other type: the first column.
//
// Conversions by destination: bool from 0/1 integers; time.Time from
// ISO-8601 text (or Unix milliseconds); pointers are nil for NULL;
// json.RawMessage takes the text as is; structs, maps, slices (other than
// []byte) and interfaces are decoded from JSON text.

type fieldSetter struct {
	index []int // nil: whole value
	set   func(v reflect.Value, r *sqlite.Row, col int) error
}

type decoderKey struct {
	t    reflect.Type
	cols string
}

// decoderCache holds column-to-field plans per (type, column list).
type decoderCache struct{ m sync.Map }

// rowDecoder decodes the rows of one query into Ts. Its plan is looked up
// (or made) on the first row: every row of a statement has the same columns.
type rowDecoder[T any] struct {
	cache *decoderCache
	t     reflect.Type
	plan  []fieldSetter
	ready bool
}

func newRowDecoder[T any](cache *decoderCache) *rowDecoder[T] {
	return &rowDecoder[T]{cache: cache, t: reflect.TypeFor[T]()}
}

func (d *rowDecoder[T]) decode(r *sqlite.Row, out *[]T) error {
	if !d.ready {
		plan, err := d.cache.plan(d.t, r)
		if err != nil {
			return err
		}
		d.plan, d.ready = plan, true
	}
	var zero T
	*out = append(*out, zero)
	rv := reflect.ValueOf(&(*out)[len(*out)-1]).Elem()
	for col, f := range d.plan {
		if f.set == nil {
			continue
		}
		dst := rv
		if f.index != nil {
			dst = rv.FieldByIndex(f.index)
		}
		if err := f.set(dst, r, col); err != nil {
			*out = (*out)[:len(*out)-1]
			return fmt.Errorf("decode column %q into %s: %w", r.ColumnName(col), d.t, err)
		}
	}
	return nil
}

// plan returns the plan decoding rows shaped like r into t.
func (c *decoderCache) plan(t reflect.Type, r *sqlite.Row) ([]fieldSetter, error) {
	key := decoderKey{t, strings.Join(r.ColumnNames(), "\x00")}
	if v, ok := c.m.Load(key); ok {
		return v.([]fieldSetter), nil
	}
	p, err := makePlan(t, r)
	if err != nil {
		return nil, err
	}
	c.m.Store(key, p)
	return p, nil
}

func makePlan(t reflect.Type, r *sqlite.Row) ([]fieldSetter, error) {
	n := r.ColumnCount()
	plan := make([]fieldSetter, n)
	switch {
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		for i := 0; i < n; i++ {
			name := r.ColumnName(i)
			plan[i] = fieldSetter{set: func(v reflect.Value, r *sqlite.Row, col int) error {
				if v.IsNil() {
					v.Set(reflect.MakeMap(v.Type()))
				}
				ev := reflect.New(v.Type().Elem()).Elem()
				if err := setValue(ev, r, col); err != nil {
					return err
				}
				v.SetMapIndex(reflect.ValueOf(name).Convert(v.Type().Key()), ev)
				return nil
			}}
		}
	case t.Kind() == reflect.Struct && t != reflect.TypeOf(time.Time{}):
		fields := structFields(t)
		for i := 0; i < n; i++ {
			name := r.ColumnName(i)
			idx, ok := fields[name]
			if !ok {
				idx, ok = fields[strings.ToLower(name)]
			}
			if ok {
				plan[i] = fieldSetter{index: idx, set: setterFor(t.FieldByIndex(idx).Type)}
			}
		}
	default:
		if n > 0 {
			plan[0] = fieldSetter{set: setValue}
		}
	}
	return plan, nil
}

// structFields maps column names to field indexes: exact tag names first,
// lower-cased field names as a fallback.
func structFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	lower := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			idx := append(append([]int(nil), prefix...), i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("db") == "" {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() {
				continue
			}
			name := f.Tag.Get("db")
			if name == "-" {
				continue
			}
			if name == "" {
				if j, _, _ := strings.Cut(f.Tag.Get("json"), ","); j != "" && j != "-" {
					name = j
				}
			}
			if name != "" {
				if _, dup := out[name]; !dup {
					out[name] = idx
				}
			}
			if _, dup := lower[strings.ToLower(f.Name)]; !dup {
				lower[strings.ToLower(f.Name)] = idx
			}
		}
	}
	walk(t, nil)
	for k, v := range lower {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}

// setterFor returns setValue, or a shortcut doing the same for the common
// destination kinds.
func setterFor(t reflect.Type) func(v reflect.Value, r *sqlite.Row, col int) error {
	if t == timeType || t == rawType {
		return setValue
	}
	switch t.Kind() {
	case reflect.String:
		return func(v reflect.Value, r *sqlite.Row, col int) error {
			if r.Type(col) == sqlite.TypeNull {
				v.SetString("")
				return nil
			}
			v.SetString(r.Text(col))
			return nil
		}
	case reflect.Int64, reflect.Int:
		return func(v reflect.Value, r *sqlite.Row, col int) error {
			if r.Type(col) != sqlite.TypeInteger {
				return setValue(v, r, col)
			}
			return setInt(v, r.Int64(col))
		}
	case reflect.Bool:
		return func(v reflect.Value, r *sqlite.Row, col int) error {
			if r.Type(col) != sqlite.TypeInteger {
				return setValue(v, r, col)
			}
			v.SetBool(r.Int64(col) != 0)
			return nil
		}
	}
	return setValue
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage(nil))
)

// setValue stores column col of r in v, converting it to v's type; NULL
// stores the zero value.
func setValue(v reflect.Value, r *sqlite.Row, col int) error {
	if r.Type(col) == sqlite.TypeNull {
		v.SetZero()
		return nil
	}
	switch {
	case v.Kind() == reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := setValue(p.Elem(), r, col); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case v.Type() == timeType:
		return setTime(v, r, col)
	case v.Type() == rawType:
		v.SetBytes([]byte(r.Text(col)))
		return nil
	}
	return setByKind(v, r, col)
}

// setByKind is setValue for a value that is neither NULL nor a pointer,
// time.Time or json.RawMessage.
func setByKind(v reflect.Value, r *sqlite.Row, col int) error {
	switch v.Kind() {
	case reflect.Bool:
		return setBool(v, r, col)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := r.Int64(col)
		if r.Type(col) == sqlite.TypeFloat {
			n = int64(r.Float(col))
		}
		return setInt(v, n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n := r.Int64(col)
		if n < 0 || v.OverflowUint(uint64(n)) {
			return fmt.Errorf("%d overflows %s", n, v.Type())
		}
		v.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(r.Float(col))
	case reflect.String:
		v.SetString(r.Text(col))
	case reflect.Interface:
		if v.NumMethod() != 0 {
			return fmt.Errorf("cannot decode into %s", v.Type())
		}
		v.Set(reflect.ValueOf(r.Value(col)))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes(r.Bytes(col))
			return nil
		}
		return jsonInto(v, r, col)
	case reflect.Struct, reflect.Map, reflect.Array:
		return jsonInto(v, r, col)
	default:
		return fmt.Errorf("cannot decode into %s", v.Type())
	}
	return nil
}

// setTime reads ISO-8601 text or Unix milliseconds into a time.Time.
func setTime(v reflect.Value, r *sqlite.Row, col int) error {
	switch typ := r.Type(col); typ {
	case sqlite.TypeInteger:
		v.Set(reflect.ValueOf(time.UnixMilli(r.Int64(col)).UTC()))
	case sqlite.TypeText:
		t, err := time.Parse(time.RFC3339Nano, r.Text(col))
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(t))
	default:
		return fmt.Errorf("cannot read a time from %v", typ)
	}
	return nil
}

// setBool reads a number (non-zero is true) or the text "true" or "1".
func setBool(v reflect.Value, r *sqlite.Row, col int) error {
	switch r.Type(col) {
	case sqlite.TypeInteger:
		v.SetBool(r.Int64(col) != 0)
	case sqlite.TypeFloat:
		v.SetBool(r.Float(col) != 0)
	case sqlite.TypeText:
		s := r.Text(col)
		v.SetBool(s == "true" || s == "1")
	default:
		return fmt.Errorf("cannot read a bool from a blob")
	}
	return nil
}

// setInt stores n in a signed integer, failing when it does not fit.
func setInt(v reflect.Value, n int64) error {
	if v.OverflowInt(n) {
		return fmt.Errorf("%d overflows %s", n, v.Type())
	}
	v.SetInt(n)
	return nil
}

func jsonInto(v reflect.Value, r *sqlite.Row, col int) error {
	p := reflect.New(v.Type())
	if err := json.Unmarshal([]byte(r.Text(col)), p.Interface()); err != nil {
		return err
	}
	v.Set(p.Elem())
	return nil
}
