package difftest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livestore-go/livestore/syncproto"
)

// TestEncodersMatchReference re-encodes every message the reference server
// sent in the golden transcripts with the encoders of package syncproto, the
// way our server encodes them (pull pages with PageEncoder inside
// AppendChunk, Exits and Defects with Marshal), normalises the bytes as a
// transcript does, and compares them with the transcript's line byte for
// byte. It runs without any server.
func TestEncodersMatchReference(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, path := range paths {
		if strings.HasSuffix(path, ".go.golden") {
			continue // our server's recorded differences, not the reference
		}
		lines, err := ReadGolden(path)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range lines {
			head, text := splitLine(line)
			if !strings.HasPrefix(head, "recv ") || !strings.HasPrefix(text, "{") {
				continue // what the script did, or a close
			}
			kind, encoded, err := encodeAsServer([]byte(text))
			if err != nil {
				t.Errorf("%s line %d: %v\n    %s", path, n+1, err, clip(text))
				continue
			}
			counts[kind]++
			if got := normalizeEncoded(t, encoded); got != text {
				t.Errorf("%s line %d (%s):\n    got:  %s\n    want: %s", path, n+1, kind, clip(got), clip(text))
			}
		}
	}
	t.Logf("messages compared: %v", counts)
	for _, kind := range []string{"pull page", "push accepted", "stream end", "tagged error", "defect exit", "defect", "interrupt", "pong"} {
		if counts[kind] == 0 {
			t.Errorf("the transcripts hold no %s to compare", kind)
		}
	}
}

// normalizeEncoded applies a transcript's normalisation to a message.
func normalizeEncoded(t *testing.T, data []byte) string {
	t.Helper()
	v, err := decodeJSON(data)
	if err != nil {
		t.Fatalf("our encoding is not JSON: %v\n%s", err, data)
	}
	r := &run{backends: map[string]string{}, symBack: map[string]string{}}
	var notes []string
	return marshal(r.rewrite("", v, &notes))
}

// encodeAsServer encodes, with the server's encoders, the message of which
// golden is the normalised reference transcript line; kind names it.
func encodeAsServer(golden []byte) (kind string, encoded []byte, err error) {
	var env struct {
		Tag       string            `json:"_tag"`
		RequestID string            `json:"requestId"`
		Values    []json.RawMessage `json:"values"`
		Exit      struct {
			Tag   string          `json:"_tag"`
			Value json.RawMessage `json:"value"`
			Cause struct {
				Tag   string          `json:"_tag"`
				Error json.RawMessage `json:"error"`
			} `json:"cause"`
		} `json:"exit"`
	}
	if err := json.Unmarshal(golden, &env); err != nil {
		return "", nil, err
	}
	var msg any
	switch env.Tag {
	case "Chunk":
		if len(env.Values) != 1 {
			return "", nil, fmt.Errorf("a Chunk of %d values", len(env.Values))
		}
		page, err := encodePage(env.Values[0])
		return "pull page", syncproto.AppendChunk(nil, env.RequestID, page), err
	case "Pong":
		kind, msg = "pong", &syncproto.Pong{}
	case "Defect":
		kind, msg = "defect", syncproto.StringDefect("replaced by normalising")
	case "Exit":
		kind, msg, err = exitAsServer(env.RequestID, env.Exit.Tag, env.Exit.Value, env.Exit.Cause.Tag, env.Exit.Cause.Error)
		if err != nil {
			return "", nil, err
		}
	default:
		return "", nil, fmt.Errorf("unexpected message %q", env.Tag)
	}
	encoded, err = syncproto.Marshal(msg)
	return kind, encoded, err
}

func exitAsServer(id, tag string, value json.RawMessage, causeTag string, taggedError json.RawMessage) (string, *syncproto.Exit, error) {
	switch {
	case tag == "Success" && value == nil:
		return "stream end", syncproto.ExitSuccess(id, nil), nil
	case tag == "Success" && string(value) == "{}":
		return "push accepted", syncproto.ExitPushed(id), nil
	case tag == "Failure" && causeTag == "Fail":
		return "tagged error", syncproto.ExitFail(id, syncproto.DecodeError(taggedError)), nil
	case tag == "Failure" && causeTag == "Die":
		return "defect exit", syncproto.ExitDie(id, "replaced by normalising"), nil
	case tag == "Failure" && causeTag == "Interrupt":
		return "interrupt", syncproto.ExitInterrupted(id), nil
	}
	return "", nil, fmt.Errorf("unexpected exit %s/%s", tag, causeTag)
}

// encodePage encodes the pull page a transcript shows (with its createdAt
// tokens) as the server does. Any createdAt will do: normalising replaces it.
func encodePage(golden json.RawMessage) ([]byte, error) {
	res, err := syncproto.DecodePullResponse(golden)
	if err != nil {
		return nil, err
	}
	enc, err := syncproto.NewPageEncoder(res.BackendID)
	if err != nil {
		return nil, err
	}
	createdAt := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	items := make([][]byte, len(res.Batch))
	for i, it := range res.Batch {
		if it.Metadata == nil {
			return nil, fmt.Errorf("event %d without metadata; the server always sends it", it.Event.SeqNum)
		}
		if items[i], err = enc.Item(&it.Event, createdAt); err != nil {
			return nil, err
		}
	}
	return enc.Page(items, res.PageInfo), nil
}
