package jwtauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/livestore-go/livestore/jwtauth"
	"github.com/livestore-go/livestore/syncserver"
)

// A server that accepts HS256 tokens naming their stores. The client app
// passes the token as syncPayload: { authToken } and the server's Auth
// option is the Verifier's Authorize.
func Example() {
	secret := []byte("a development secret of at least 32 bytes")
	v, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	_ = syncserver.Options{Auth: v.Authorize} // with Storage, passed to syncserver.New

	token, err := jwtauth.Mint(secret, jwtauth.MintOptions{Stores: []string{"team-*"}, PullOnly: true})
	if err != nil {
		log.Fatal(err)
	}
	syncPayload, _ := json.Marshal(map[string]string{"authToken": token})

	access, err := v.Authorize(context.Background(), "team-7", syncPayload, nil)
	fmt.Println("team-7:", err, "read-only:", access.ReadOnly)
	_, err = v.Authorize(context.Background(), "other", syncPayload, nil)
	fmt.Println("other:", err)
	// Output:
	// team-7: <nil> read-only: true
	// other: token not valid for store "other"
}
