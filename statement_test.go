package livestore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/livestore-go/livestore"
)

func TestQueryBuilderSQL(t *testing.T) {
	todos := livestore.NewTable("todos",
		livestore.Text("id").PrimaryKey(),
		livestore.Text("text").Default(""),
		livestore.Boolean("completed").Default(false),
		livestore.Integer("prio").Nullable(),
		livestore.DateTime("due").Nullable(),
		livestore.JSON("tags").Nullable())
	due := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	cases := []struct {
		name string
		stmt livestore.Statement
		sql  string
		args string
	}{
		{"select all", todos.Select(), `SELECT * FROM "todos"`, `[]`},
		{"select columns", todos.Select("id", "text"), `SELECT "id", "text" FROM "todos"`, `[]`},
		{"where eq bool", todos.Where(livestore.Eq("completed", true)), `SELECT * FROM "todos" WHERE "completed" = ?`, `[1]`},
		{"where ops", todos.Where(livestore.Gt("prio", 1), livestore.Le("prio", 9), livestore.Ne("text", "x"), livestore.Like("text", "a%")),
			`SELECT * FROM "todos" WHERE "prio" > ? AND "prio" <= ? AND "text" != ? AND "text" LIKE ?`, `[1 9 x a%]`},
		{"where null", todos.Where(livestore.IsNull("due"), livestore.IsNotNull("prio"), livestore.Eq("tags", nil)),
			`SELECT * FROM "todos" WHERE "due" IS NULL AND "prio" IS NOT NULL AND "tags" IS NULL`, `[]`},
		{"in", todos.Where(livestore.In("id", "a", "b")), `SELECT * FROM "todos" WHERE "id" IN (?, ?)`, `[a b]`},
		{"empty in", todos.Where(livestore.In("id")), `SELECT * FROM "todos" WHERE 0`, `[]`},
		{"not in", todos.Where(livestore.NotIn("id", "a")), `SELECT * FROM "todos" WHERE "id" NOT IN (?)`, `[a]`},
		{"datetime arg", todos.Where(livestore.Lt("due", due)), `SELECT * FROM "todos" WHERE "due" < ?`, `[2024-05-06T06:08:09.123Z]`},
		{"order limit offset", todos.Select().OrderBy("prio", livestore.Desc).OrderBy("id").Limit(10).Offset(5),
			`SELECT * FROM "todos" ORDER BY "prio" DESC, "id" ASC LIMIT ? OFFSET ?`, `[10 5]`},
		{"count", todos.Count(livestore.Eq("completed", false)), `SELECT count(*) AS count FROM "todos" WHERE "completed" = ?`, `[0]`},
		{"insert", todos.Insert(livestore.Values{"id": "a", "text": "t", "tags": []string{"x"}}),
			`INSERT INTO "todos" ("id", "tags", "text") VALUES (?, ?, ?)`, `[a ["x"] t]`},
		{"insert ignore", todos.Insert(livestore.Values{"id": "a"}).OnConflict().Ignore(),
			`INSERT INTO "todos" ("id") VALUES (?) ON CONFLICT ("id") DO NOTHING`, `[a]`},
		{"insert replace", todos.Insert(livestore.Values{"id": "a", "text": "t"}).OnConflict("id").Replace(),
			`INSERT INTO "todos" ("id", "text") VALUES (?, ?) ON CONFLICT ("id") DO UPDATE SET "id" = excluded."id", "text" = excluded."text"`, `[a t]`},
		{"insert update", todos.Insert(livestore.Values{"id": "a"}).OnConflict("id").Update(livestore.Values{"completed": true}),
			`INSERT INTO "todos" ("id") VALUES (?) ON CONFLICT ("id") DO UPDATE SET "completed" = ?`, `[a 1]`},
		{"update", todos.Update(livestore.Values{"completed": false, "prio": 3}).Where(livestore.Eq("id", "a")),
			`UPDATE "todos" SET "completed" = ?, "prio" = ? WHERE "id" = ?`, `[0 3 a]`},
		{"delete", todos.Delete().Where(livestore.In("id", "a")), `DELETE FROM "todos" WHERE "id" IN (?)`, `[a]`},
		{"delete all", todos.Delete(), `DELETE FROM "todos"`, `[]`},
	}
	for _, c := range cases {
		sql, args, err := c.stmt.Build()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if sql != c.sql {
			t.Errorf("%s:\n got %s\nwant %s", c.name, sql, c.sql)
		}
		if got := fmt.Sprint(args); got != c.args {
			t.Errorf("%s: args %s, want %s", c.name, got, c.args)
		}
	}
}

func TestQueryBuilderRejects(t *testing.T) {
	todos := livestore.NewTable("todos", livestore.Text("id").PrimaryKey(), livestore.Integer("n"), livestore.Text("req"))
	bad := map[string]livestore.Statement{
		"unknown column in where":  todos.Where(livestore.Eq("nope", 1)),
		"unknown column in select": todos.Select("nope"),
		"unknown order column":     todos.Select().OrderBy("nope"),
		"bad direction":            todos.Select().OrderBy("n", "sideways"),
		"wrong value type":         todos.Insert(livestore.Values{"id": "a", "n": "not a number", "req": "r"}),
		"missing required":         todos.Insert(livestore.Values{"id": "a", "n": 1}),
		"null into not null":       todos.Update(livestore.Values{"n": nil}),
		"empty update":             todos.Update(livestore.Values{}),
		"unknown conflict target":  todos.Insert(livestore.Values{"id": "a", "n": 1, "req": "r"}).OnConflict("nope").Ignore(),
	}
	for name, st := range bad {
		if _, _, err := st.Build(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Values are never interpolated into SQL text.
	sql, args, err := todos.Where(livestore.Eq("req", "x'); DROP TABLE todos; --")).Build()
	if err != nil || sql != `SELECT * FROM "todos" WHERE "req" = ?` || len(args) != 1 {
		t.Fatalf("%s %v %v", sql, args, err)
	}
}
