package rowbudget

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// rowSize is what a row costs: its JSON and a comma.
func rowSize(t *testing.T, row []any) int {
	t.Helper()
	b, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	return len(b) + 1
}

func TestRowBound(t *testing.T) {
	c := New(3, 1<<20)
	for i := range 3 {
		if err := c.Add([]any{int64(i), "x"}); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	if err := c.Add([]any{int64(3), "x"}); !errors.Is(err, ErrFull) {
		t.Fatalf("fourth row: err = %v, want ErrFull", err)
	}
	if len(c.Rows()) != 3 || c.TruncatedBy() != ByRows {
		t.Fatalf("%d rows, truncated by %q; want 3 rows, %q", len(c.Rows()), c.TruncatedBy(), ByRows)
	}
}

func TestByteBound(t *testing.T) {
	row := []any{"abcdef", int64(12345), nil}
	size := rowSize(t, row)
	// Room for two rows and one byte short of a third.
	c := New(0, 3*size-1)
	for i := range 2 {
		if err := c.Add(row); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	if err := c.Add(row); !errors.Is(err, ErrFull) {
		t.Fatalf("third row: err = %v, want ErrFull", err)
	}
	if len(c.Rows()) != 2 || c.TruncatedBy() != ByBytes {
		t.Fatalf("%d rows, truncated by %q; want 2 rows, %q", len(c.Rows()), c.TruncatedBy(), ByBytes)
	}
}

func TestExactFitAndEmpty(t *testing.T) {
	row := []any{"v"}
	c := New(0, rowSize(t, row))
	if c.Rows() == nil || len(c.Rows()) != 0 || c.TruncatedBy() != "" {
		t.Fatalf("new collector: rows %v, truncated by %q", c.Rows(), c.TruncatedBy())
	}
	if err := c.Add(row); err != nil {
		t.Fatalf("a row that fits exactly: %v", err)
	}
	if c.TruncatedBy() != "" {
		t.Fatalf("truncated by %q after every row fitted", c.TruncatedBy())
	}
}

func TestUnencodableRow(t *testing.T) {
	c := New(0, 1<<20)
	err := c.Add([]any{make(chan int)})
	if err == nil || errors.Is(err, ErrFull) {
		t.Fatalf("err = %v, want an encoding error", err)
	}
	if len(c.Rows()) != 0 {
		t.Fatalf("kept %d rows", len(c.Rows()))
	}
}

func ExampleCollector() {
	c := New(2, 1<<10)
	for i := range 5 {
		if err := c.Add([]any{int64(i), fmt.Sprintf("row %d", i)}); err != nil {
			break
		}
	}
	b, _ := json.Marshal(c.Rows())
	fmt.Println(string(b), c.TruncatedBy())
	// Output: [[0,"row 0"],[1,"row 1"]] rows
}
