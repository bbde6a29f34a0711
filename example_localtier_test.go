package cachier_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/filestore"
)

// A local tier in front of a shared store: hits are answered from this process's
// memory, and a change made by any process reaches this one within the store's
// notification latency, and never later than the bound.
func ExampleLocalTier() {
	dir, err := os.MkdirTemp("", "cachier-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	st, err := filestore.New(&filestore.Options{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer st.Close()

	square, err := cachier.Wrap(func(_ context.Context, n int) (int, error) { return n * n, nil },
		cachier.Name("example/square"), cachier.WithStore(st),
		cachier.LocalTier(10_000, 64<<20), // at most 10,000 results and 64 MiB of their encodings
		cachier.LocalTierBound(time.Second))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for range 3 {
		v, err := square.Call(ctx, 12)
		if err != nil {
			panic(err)
		}
		fmt.Println(v)
	}
	fmt.Println("computed", square.Stats().Computations, "time")
	// Output:
	// 144
	// 144
	// 144
	// computed 1 time
}
