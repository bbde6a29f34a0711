package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	_ "github.com/cachier-go/cachier/store/all"
)

// cachier invalidate --tag / --prefix reaches entries a program stored with tags.
func TestInvalidateTagAndPrefix(t *testing.T) {
	storeKinds(t, func(t *testing.T, e *env) {
		url := e.storeURL
		if url == "" {
			url = "file://" + e.cache + "/cachier"
		}
		ctx := context.Background()
		st, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var n atomic.Int64
		f, err := cachier.Wrap(func(_ context.Context, x int) (int64, error) { return n.Add(1), nil },
			cachier.Name("cli-invalidate-"+randomHex(4)), cachier.WithStore(st), cachier.Tags("t1"),
			cachier.Prefix(func(x int) string { return "p" + strings.Repeat("x", x) }))
		if err != nil {
			t.Fatal(err)
		}
		f.Call(ctx, 1)
		f.Call(ctx, 1)
		if r := e.run("invalidate", "--tag", "t1"); r.code != 0 || !strings.Contains(r.stdout, "invalidated tag t1") {
			t.Fatalf("invalidate --tag: %v", r)
		}
		f.Call(ctx, 1)
		if r := e.run("invalidate", "--prefix", "px", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"px"`) {
			t.Fatalf("invalidate --prefix: %v", r)
		}
		f.Call(ctx, 1)
		if n.Load() != 3 {
			t.Fatalf("%d computations, want 3 (one per invalidation)", n.Load())
		}
	})
}
