package livestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/livestore-go/livestore"
)

type TodoCreated struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

type Todo struct {
	ID        string `db:"id" json:"id"`
	Text      string `db:"text" json:"text"`
	Completed bool   `db:"completed" json:"completed"`
}

func exampleSchema() (*livestore.Schema, *livestore.Table, *livestore.EventDef[TodoCreated]) {
	todos := livestore.NewTable("todos",
		livestore.Text("id").PrimaryKey(),
		livestore.Text("text"),
		livestore.Boolean("completed").Default(false))
	created := livestore.Synced[TodoCreated]("v1.TodoCreated")
	schema, err := livestore.NewSchema(livestore.SchemaDef{
		Tables: []*livestore.Table{todos},
		Events: []livestore.Definition{created},
		Materializers: []livestore.Materializer{
			livestore.Materialize(created, func(_ *livestore.MaterializeContext, e TodoCreated) ([]livestore.Statement, error) {
				return []livestore.Statement{todos.Insert(livestore.Values{"id": e.ID, "text": e.Text})}, nil
			}),
		},
	})
	if err != nil {
		panic(err)
	}
	return schema, todos, created
}

func Example() {
	ctx := context.Background()
	schema, todos, created := exampleSchema()
	dir, _ := os.MkdirTemp("", "todos")
	defer os.RemoveAll(dir)

	store, err := livestore.Open(ctx, schema, livestore.Options{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	if err := store.Commit(ctx, created.New(TodoCreated{ID: "1", Text: "Buy milk"})); err != nil {
		fmt.Println(err)
		return
	}
	rows, _ := livestore.Query[Todo](ctx, store, todos.Where(livestore.Eq("completed", false)))
	fmt.Printf("%+v\n", rows)
	// Output: [{ID:1 Text:Buy milk Completed:false}]
}

func ExampleSubscribe() {
	ctx := context.Background()
	schema, todos, created := exampleSchema()
	store, _ := livestore.Open(ctx, schema, livestore.Options{})
	defer store.Close()

	count := livestore.QueryDBFirst(todos.Count(), struct{ Count int }{}, "todo count")
	seen := make(chan int, 10)
	unsubscribe, _ := livestore.Subscribe(ctx, store, count, func(v struct{ Count int }) { seen <- v.Count })
	defer unsubscribe()
	fmt.Println(<-seen)
	store.Commit(ctx, created.New(TodoCreated{ID: "1", Text: "Buy milk"}))
	fmt.Println(<-seen)
	// Output:
	// 0
	// 1
}

// A server keeping one store per workspace: the registry opens a store on
// first use, shares it between concurrent requests and closes it when it has
// been idle for a while.
func ExampleRegistry() {
	schema, todos, created := exampleSchema()
	base, _ := os.MkdirTemp("", "workspaces")
	defer os.RemoveAll(base)
	reg := livestore.NewRegistry(livestore.RegistryOptions{Schema: schema, BaseDir: base})
	defer reg.Close(context.Background())

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store, release, err := reg.Get(r.Context(), livestore.StoreOptions{StoreID: r.PathValue("workspace")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer release()
		if r.Method == http.MethodPost {
			var t TodoCreated
			json.NewDecoder(r.Body).Decode(&t)
			if err := store.Commit(r.Context(), created.New(t)); err != nil {
				http.Error(w, err.Error(), http.StatusUnprocessableEntity)
				return
			}
		}
		rows, _ := livestore.Query[Todo](r.Context(), store, todos.Select().OrderBy("id"))
		json.NewEncoder(w).Encode(rows)
	})
	mux := http.NewServeMux()
	mux.Handle("/workspaces/{workspace}/todos", handler)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(ws, body string) {
		resp, err := http.Post(srv.URL+"/workspaces/"+ws+"/todos", "application/json", stringReader(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		var rows []Todo
		json.NewDecoder(resp.Body).Decode(&rows)
		fmt.Println(ws, len(rows))
	}
	post("acme", `{"id":"1","text":"ship it"}`)
	post("acme", `{"id":"2","text":"celebrate"}`)
	post("globex", `{"id":"1","text":"plan"}`)
	// Output:
	// acme 1
	// acme 2
	// globex 1
}
