package registry_test

import (
	"context"
	"fmt"

	"github.com/livestore-go/livestore/internal/registry"
)

type conn struct{ name string }

func Example() {
	ctx := context.Background()
	r := registry.New(
		func(ctx context.Context, name string, _ registry.Options) (*conn, error) {
			fmt.Println("open", name)
			return &conn{name: name}, nil
		},
		func(ctx context.Context, c *conn) error {
			fmt.Println("close", c.name)
			return nil
		},
		registry.Config{},
	)

	c1, release1, err := r.Get(ctx, "db1", registry.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer release1()
	c2, release2, _ := r.Get(ctx, "db1", registry.Options{}) // shares the first load
	defer release2()
	fmt.Println("shared:", c1 == c2)

	if err := r.Close(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// open db1
	// shared: true
	// close db1
}
