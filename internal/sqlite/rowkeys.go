package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// This file reads the primary keys of the rows a changeset changed, for
// invalidating by row. It decodes SQLite's changeset format directly (see
// "CHANGESET FORMAT" in SQLite's sqlite3session.c): the driver's iterator
// allocates C memory for every value it hands out, which costs more than
// the commit whose keys are wanted.

// RowKey is the canonical form of one primary-key value: two values compare
// equal in SQLite (BINARY collation, no type conversion) exactly when their
// RowKeys are equal. It is meant as a map key, not to be read.
type RowKey string

// KeyOf returns the RowKey of v, which must be one of the values a column
// stores: int64, float64, string or []byte. NULL has no key (a NULL primary
// key matches no equality).
func KeyOf(v any) (RowKey, bool) {
	switch x := v.(type) {
	case int64:
		return intKey(x), true
	case float64:
		return realKey(math.Float64bits(x)), true
	case string:
		return RowKey("t" + x), true
	case []byte:
		return RowKey("b" + string(x)), true
	}
	return "", false
}

func intKey(n int64) RowKey {
	var b [9]byte
	b[0] = 'i'
	binary.BigEndian.PutUint64(b[1:], uint64(n))
	return RowKey(b[:])
}

func realKey(bits uint64) RowKey {
	var b [9]byte
	b[0] = 'r'
	binary.BigEndian.PutUint64(b[1:], bits)
	return RowKey(b[:])
}

// Changeset operation codes and value types, as SQLite writes them.
const (
	csTable  = 'T'
	csInsert = 18
	csUpdate = 23
	csDelete = 9

	valUndefined = 0
	valInteger   = 1
	valReal      = 2
	valText      = 3
	valBlob      = 4
	valNull      = 5
)

var errBadChangeset = errors.New("sqlite: malformed changeset")

// ChangedRows calls fn once for each row change of changeset with the
// change's table and the RowKey of the row's primary key. A table whose
// primary key is not exactly one column is reported with single false and
// an empty key, once per change. An UPDATE that changed the key reports
// the old and the new key. It fails on bytes that are not a changeset
// (patchsets included), and then may have called fn for a prefix.
func ChangedRows(changeset []byte, fn func(table string, key RowKey, single bool)) error {
	p := csReader{b: changeset}
	var (
		table string
		nCol  int
		pkCol = -1 // the one key column, or -1
	)
	for !p.done() {
		if p.peek() == csTable {
			var err error
			if table, nCol, pkCol, err = p.tableHeader(); err != nil {
				return err
			}
			continue
		}
		if table == "" {
			return errBadChangeset
		}
		op := p.byte()
		p.byte() // indirect flag
		var records int
		switch op {
		case csInsert, csDelete:
			records = 1
		case csUpdate:
			records = 2
		default:
			return fmt.Errorf("%w: operation %d", errBadChangeset, op)
		}
		var keys [2]RowKey
		var defined [2]bool
		for r := 0; r < records; r++ {
			for col := 0; col < nCol; col++ {
				k, ok, err := p.value(col == pkCol)
				if err != nil {
					return err
				}
				if col == pkCol {
					keys[r], defined[r] = k, ok
				}
			}
		}
		switch {
		case pkCol < 0:
			fn(table, "", false)
		case !defined[0] && !defined[1]:
			return fmt.Errorf("%w: change without key in %s", errBadChangeset, table)
		default:
			if defined[0] {
				fn(table, keys[0], true)
			}
			if defined[1] && (!defined[0] || keys[1] != keys[0]) {
				fn(table, keys[1], true)
			}
		}
	}
	return p.err
}

// csReader decodes a changeset; after a failure it stays failed and
// reports done.
type csReader struct {
	b   []byte
	err error
}

func (p *csReader) done() bool { return p.err != nil || len(p.b) == 0 }

func (p *csReader) fail() { p.err, p.b = errBadChangeset, nil }

func (p *csReader) peek() byte { return p.b[0] }

func (p *csReader) byte() byte {
	if len(p.b) == 0 {
		p.fail()
		return 0
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c
}

func (p *csReader) bytes(n uint64) []byte {
	if n > uint64(len(p.b)) {
		p.fail()
		return nil
	}
	out := p.b[:n]
	p.b = p.b[n:]
	return out
}

// varint reads a SQLite varint: big-endian groups of 7 bits, the high bit
// set on all but the last, the ninth byte contributing all 8 bits.
func (p *csReader) varint() uint64 {
	var v uint64
	for i := 0; i < 9; i++ {
		c := p.byte()
		if i == 8 {
			return v<<8 | uint64(c)
		}
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 == 0 {
			return v
		}
	}
	return v
}

// tableHeader reads a table header: the table's name, its number of
// columns and its one key column (-1 when the key has several columns).
func (p *csReader) tableHeader() (table string, nCol, pkCol int, err error) {
	p.byte()
	n := p.varint()
	if n == 0 || n > 1<<16 {
		p.fail()
	}
	flags := p.bytes(n)
	pkCol = -1
	for i, f := range flags {
		if f == 0 {
			continue
		}
		if pkCol >= 0 {
			pkCol = -2
			break
		}
		pkCol = i
	}
	if pkCol < 0 {
		pkCol = -1
	}
	end := -1
	for i, c := range p.b {
		if c == 0 {
			end = i
			break
		}
	}
	if end <= 0 {
		p.fail()
	}
	if p.err != nil {
		return "", 0, 0, p.err
	}
	table = string(p.b[:end])
	p.b = p.b[end+1:]
	return table, int(n), pkCol, nil
}

// value reads one field of a record, returning its RowKey when wantKey is
// set and the field holds a value (not undefined, not NULL).
func (p *csReader) value(wantKey bool) (RowKey, bool, error) {
	t := p.byte()
	var key RowKey
	ok := false
	switch t {
	case valUndefined, valNull:
	case valInteger, valReal:
		b := p.bytes(8)
		if wantKey && p.err == nil {
			if t == valInteger {
				key = intKey(int64(binary.BigEndian.Uint64(b)))
			} else {
				key = realKey(binary.BigEndian.Uint64(b))
			}
			ok = true
		}
	case valText, valBlob:
		b := p.bytes(p.varint())
		if wantKey && p.err == nil {
			prefix := "t"
			if t == valBlob {
				prefix = "b"
			}
			key, ok = RowKey(prefix+string(b)), true
		}
	default:
		p.fail()
	}
	return key, ok, p.err
}
