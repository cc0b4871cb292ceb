package livestore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/livestore-go/livestore/internal/sqlite"
)

// DumpState renders every state table in a canonical text form: tables by
// name, rows by primary key, values as JSON (blobs as hex). Two stores whose
// dumps are equal hold byte-identical state; tests and convergence checks
// compare dumps.
func (s *Store) DumpState(ctx context.Context) (string, error) {
	tables := append([]*Table(nil), s.schema.tables...)
	sort.Slice(tables, func(i, j int) bool { return tables[i].name < tables[j].name })
	var b strings.Builder
	for _, t := range tables {
		fmt.Fprintf(&b, "table %s\n", t.name)
		pk := t.primaryKey()
		order := make([]string, len(pk))
		for i, c := range pk {
			order[i] = quoteIdent(c)
		}
		q := fmt.Sprintf("SELECT * FROM %s ORDER BY %s", quoteIdent(t.name), strings.Join(order, ", "))
		err := s.readRows(ctx, q, nil, func(r *sqlite.Row) error {
			vals := make([]any, r.ColumnCount())
			for i := range vals {
				switch r.Type(i) {
				case sqlite.TypeBlob:
					vals[i] = "x'" + hex.EncodeToString(r.Bytes(i)) + "'"
				case sqlite.TypeFloat:
					vals[i] = r.Float(i)
				default:
					vals[i] = r.Value(i)
				}
			}
			line, err := json.Marshal(vals)
			if err != nil {
				return err
			}
			b.Write(line)
			b.WriteByte('\n')
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("livestore: dump %s: %w", t.name, err)
		}
	}
	return b.String(), nil
}
