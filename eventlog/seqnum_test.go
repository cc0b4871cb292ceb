package eventlog

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"testing/quick"

	"github.com/livestore-go/livestore/syncproto"
)

func TestSeqNumString(t *testing.T) {
	cases := []struct {
		s    SeqNum
		want string
	}{
		{SeqNum{}, "e0"},
		{SeqNum{Global: 5}, "e5"},
		{SeqNum{Global: 5, Client: 1}, "e5.1"},
		{SeqNum{Global: 5, RebaseGeneration: 1}, "e5r1"},
		{SeqNum{Global: 5, Client: 1, RebaseGeneration: 2}, "e5.1r2"},
	}
	for _, c := range cases {
		if got := c.s.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.s, got, c.want)
		}
		back, err := ParseSeqNum(c.want)
		if err != nil || back != c.s {
			t.Errorf("ParseSeqNum(%q) = %+v, %v; want %+v", c.want, back, err, c.s)
		}
	}
}

func TestParseSeqNumRejects(t *testing.T) {
	for _, in := range []string{"", "e", "5", "e-1", "e5.", "e5r", "ex", "e05", "e5.1.2", "e5r1r2", "E5", "e5.-1"} {
		if _, err := ParseSeqNum(in); !errors.Is(err, ErrBadSeqNum) {
			t.Errorf("ParseSeqNum(%q) err = %v, want ErrBadSeqNum", in, err)
		}
	}
}

func TestSeqNumRoundTripQuick(t *testing.T) {
	f := func(g, c, r uint32) bool {
		s := SeqNum{Global: int64(g), Client: int64(c), RebaseGeneration: int64(r)}
		back, err := ParseSeqNum(s.String())
		if err != nil || back != s {
			return false
		}
		b, err := json.Marshal(s)
		if err != nil {
			return false
		}
		var j SeqNum
		return json.Unmarshal(b, &j) == nil && j == s
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSeqNumJSONShape(t *testing.T) {
	b, _ := json.Marshal(SeqNum{Global: 5, Client: 1, RebaseGeneration: 2})
	if string(b) != `{"global":5,"client":1,"rebaseGeneration":2}` {
		t.Fatalf("json = %s", b)
	}
}

func TestNextAndCompare(t *testing.T) {
	h := SeqNum{Global: 5, Client: 2, RebaseGeneration: 1}
	synced, err := h.NextSynced()
	if err != nil || synced != (SeqNum{Global: 6, RebaseGeneration: 1}) {
		t.Errorf("NextSynced = %v, %v", synced, err)
	}
	clientOnly, err := h.NextClientOnly()
	if err != nil || clientOnly != (SeqNum{Global: 5, Client: 3, RebaseGeneration: 1}) {
		t.Errorf("NextClientOnly = %v, %v", clientOnly, err)
	}
	if h.Compare(synced) >= 0 || clientOnly.Compare(h) <= 0 {
		t.Error("ordering broken")
	}
	if (SeqNum{Global: 3, RebaseGeneration: 1}).Compare(SeqNum{Global: 3}) != 0 {
		t.Error("rebase generation must not change position")
	}
}

// TestNextNeverWraps: the successors stop at MaxNumber (2^53-1, what
// JavaScript clients and the sync protocol can hold) instead of passing it
// or wrapping to negative numbers.
func TestNextNeverWraps(t *testing.T) {
	if MaxNumber != syncproto.MaxSeqNum {
		t.Fatalf("MaxNumber %d, protocol's MaxSeqNum %d", MaxNumber, syncproto.MaxSeqNum)
	}
	last, err := SeqNum{Global: MaxNumber - 1, Client: 4}.NextSynced()
	if err != nil || last != (SeqNum{Global: MaxNumber}) {
		t.Fatalf("NextSynced below the limit = %v, %v", last, err)
	}
	for _, h := range []SeqNum{{Global: MaxNumber}, {Global: MaxNumber, Client: 3}, {Global: math.MaxInt64}, {Global: -1}} {
		got, err := h.NextSynced()
		if !errors.Is(err, ErrSeqNumExhausted) || got != (SeqNum{}) {
			t.Errorf("NextSynced of %v = %v, %v", h, got, err)
		}
	}
	want := "sequence numbers exhausted: no global sequence number after e9007199254740991 (the largest is 9007199254740991)"
	if _, err := (SeqNum{Global: MaxNumber}).NextSynced(); err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	// Client-only events after the last global number are still possible.
	if got, err := (SeqNum{Global: MaxNumber}).NextClientOnly(); err != nil || got != (SeqNum{Global: MaxNumber, Client: 1}) {
		t.Errorf("NextClientOnly at the last global = %v, %v", got, err)
	}
	if _, err := (SeqNum{Global: 1, Client: MaxNumber}).NextClientOnly(); !errors.Is(err, ErrSeqNumExhausted) {
		t.Errorf("NextClientOnly at the last client number: %v", err)
	}
}
