package cachier_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

// fetchUsers asks an upstream for many users at once; it leaves out the ones it does
// not know.
func fetchUsers(_ context.Context, ids []int) (map[int]string, error) {
	fmt.Println("upstream asked for", len(ids), "users")
	out := make(map[int]string, len(ids))
	for _, id := range ids {
		if id != 404 {
			out[id] = fmt.Sprintf("user-%d", id)
		}
	}
	return out, nil
}

func ExampleWrapBatch() {
	ctx := context.Background()
	users, err := cachier.WrapBatch(fetchUsers,
		cachier.WithStore(memstore.New(nil)),
		cachier.CacheMissing(time.Minute), // remember "no such user" for a minute
	)
	if err != nil {
		panic(err)
	}
	got, _ := users.Call(ctx, []int{1, 2, 3, 404})
	fmt.Println(len(got), got[2])

	// 1 to 3 and 404 are cached: only 4 and 5 go upstream, in one call.
	got, _ = users.Call(ctx, []int{1, 2, 3, 4, 5, 404})
	_, found := got[404]
	fmt.Println(len(got), found)

	one, err := users.CallOne(ctx, 5)
	fmt.Println(one, err)
	_, err = users.CallOne(ctx, 404)
	fmt.Println(strings.Contains(err.Error(), "no result"))
	fmt.Println(users.Stats().Hits, "hits,", users.Stats().Computations, "computations")
	// Output:
	// upstream asked for 4 users
	// 3 user-2
	// upstream asked for 2 users
	// 5 false
	// user-5 <nil>
	// true
	// 6 hits, 6 computations
}
