package cachier_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

var ErrNoSuchUser = errors.New("no such user")

func ExampleCacheNotFound() {
	_ = cachier.RegisterError(ErrNoSuchUser) // at init, in every program sharing the store
	lookup := func(_ context.Context, id int) (string, error) {
		fmt.Println("asking the upstream for", id)
		return "", fmt.Errorf("user %d: %w", id, ErrNoSuchUser)
	}
	f, _ := cachier.Wrap(lookup, cachier.Name("example/users"), cachier.WithStore(memstore.New(nil)),
		cachier.CacheNotFound(func(err error) bool { return errors.Is(err, ErrNoSuchUser) }, time.Minute))
	ctx := context.Background()
	for range 2 {
		_, err := f.Call(ctx, 7)
		fmt.Println(err, errors.Is(err, ErrNoSuchUser), errors.Is(err, cachier.ErrCached))
	}
	// Output:
	// asking the upstream for 7
	// user 7: no such user true false
	// user 7: no such user true true
}

func ExampleFunc_Close() {
	st := memstore.New(nil)
	f, _ := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x * 2, nil },
		cachier.Name("example/close"), cachier.WithStore(st), cachier.ComputeTimeout(5*time.Second))
	ctx := context.Background()
	v, _ := f.Call(ctx, 21)
	fmt.Println(v)

	// On the way out: the functions first, then their store.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fmt.Println(f.Close(ctx))
	fmt.Println(st.Close())
	v, _ = f.Call(ctx, 21) // runs fn directly now
	fmt.Println(v, errors.Is(f.Invalidate(ctx, 21), cachier.ErrClosed))
	// Output:
	// 42
	// <nil>
	// <nil>
	// 42 true
}
