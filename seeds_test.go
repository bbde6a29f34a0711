package cachier_test

// Behaviours the seed projects' own test suites check (python-cachier's tests/,
// easy_cache's tests, cacheman's tests), exercised the way a user of this library
// would, where no other test already does.

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// cachier's test_max_age_zero: max_age=0 always recomputes, whatever stale_after
// says, and also without one. MaxAge(0) used to mean "no limit".
func TestMaxAgeZeroAlwaysRecomputes(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		for _, staleAfter := range []time.Duration{0, 100 * time.Second} {
			clk := newClock()
			var n atomic.Int64
			fn := func(_ context.Context, x int) (int, error) { return int(n.Add(1)), nil }
			f, err := cachier.Wrap(fn, cachier.Name("maxage0"), cachier.WithStore(newStore(t)), cachier.WithClock(clk), cachier.StaleAfter(staleAfter))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			v1, _ := f.Call(ctx, 1)
			clk.Advance(time.Second)
			if v2, _ := f.Call(ctx, 1, cachier.MaxAge(0)); v2 == v1 {
				t.Errorf("StaleAfter(%v): MaxAge(0) served the cached value %d", staleAfter, v1)
			}
			if _, fr, _ := f.Peek(ctx, 1, cachier.MaxAge(0)); fr == cachier.Fresh {
				t.Errorf("StaleAfter(%v): Peek with MaxAge(0) says fresh", staleAfter)
			}
		}
	})
}

// cachier's cleanup_stale deletes stale entries, and easy_cache's callable timeout
// gives each entry its own: with StaleAfterFunc, CleanupStale must not delete an
// entry that its own limit keeps fresh, though it is older than StaleAfter.
func TestCleanupStaleKeepsEntriesFreshByTheirOwnLimit(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		clk := newClock()
		st := newStore(t)
		fn := func(_ context.Context, x int) (int, error) { return x, nil }
		opts := []cachier.Option{cachier.Name("cleanup-own-ttl"), cachier.WithStore(st), cachier.WithClock(clk),
			cachier.StaleAfter(time.Minute), cachier.CleanupStale(time.Hour),
			cachier.StaleAfterFunc(func(x, _ int) time.Duration { return time.Duration(x) * time.Hour })}
		f, err := cachier.Wrap(fn, opts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		f.Call(ctx, 5) // fresh for 5 hours; the first call's cleanup finds nothing
		clk.Advance(2 * time.Hour)
		f.Call(ctx, 0) // past the interval: a cleanup runs, 2 hours after 5 was stored
		if err := f.Close(ctx); err != nil {
			t.Fatal(err)
		}
		g, err := cachier.Wrap(fn, opts...) // f is closed; g reads the same entries
		if err != nil {
			t.Fatal(err)
		}
		if _, fr, err := g.Peek(ctx, 5); err != nil || fr != cachier.Fresh {
			t.Errorf("an entry fresh for 5 hours, 2 hours old: Peek = %v, %v; CleanupStale deleted it", fr, err)
		}
	})
}

type textResult struct {
	Name  string
	Lines []string
	Index map[string]int
}

// A Go string may hold bytes that are not UTF-8 (a Latin-1 name, bytes read from a
// file); cachier's tests cache arbitrary return values. Such a result is a hit on the
// stores that decode, not a corrupt entry logged and recomputed on every call.
func TestResultWithInvalidUTF8IsAHit(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		var n atomic.Int64
		want := textResult{Name: "Jos\xe9", Lines: []string{"\xff\xfe", "ok"}, Index: map[string]int{"\xe9t\xe9": 1}}
		fn := func(_ context.Context, x int) (textResult, error) { n.Add(1); return want, nil }
		f, err := cachier.Wrap(fn, cachier.Name("latin1"), cachier.WithStore(newStore(t)), cachier.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for range 2 {
			got, err := f.Call(ctx, 1)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Call = %+q, %v; want %+q", got.Lines, err, want.Lines)
			}
		}
		if n.Load() != 1 || f.Stats().DecodeErrors != 0 {
			t.Errorf("computed %d times, %d decode errors; want 1 and 0", n.Load(), f.Stats().DecodeErrors)
		}
	})
}

type ecArgs struct{ A, B, C int }

// easy_cache's tests_basic, in one function: a custom key that ignores a parameter
// (a change in it is still a hit), a prefix and tags computed from the argument, a
// static tag, and every way to invalidate: the argument's tags, its prefix, the
// prefix or a tag by name on the store, the key, Clear, Refresh (no recomputation on
// the next call) and a delete of the store key Key returns.
func TestEasyCacheInvalidators(t *testing.T) {
	versionedStores(t, func(t *testing.T, st store.Store) {
		var n atomic.Int64
		fn := func(_ context.Context, x ecArgs) (string, error) {
			n.Add(1)
			return fmt.Sprint(x.A, x.B, x.C), nil
		}
		f, err := cachier.Wrap(fn, cachier.Name("easy-cache-invalidators"), cachier.WithStore(st),
			cachier.WithKey(func(x ecArgs) (string, error) { return fmt.Sprintf("%d:%d", x.A, x.B), nil }),
			cachier.Prefix(func(x ecArgs) string { return fmt.Sprintf("ppp:%d", x.B) }),
			cachier.TagsOf(func(x ecArgs) []string { return []string{fmt.Sprintf("ttt:%d", x.C)} }),
			cachier.Tags("static"))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		arg := ecArgs{1, 2, 3}
		call := func(x ecArgs) int64 {
			before := n.Load()
			if _, err := f.Call(ctx, x); err != nil {
				t.Fatal(err)
			}
			return n.Load() - before
		}
		step := func(name string, do func() error, want int64) {
			t.Helper()
			if err := do(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := call(arg); got != want {
				t.Errorf("%s: computed %d, want %d", name, got, want)
			}
			if got := call(arg); got != 0 {
				t.Errorf("%s: second call computed", name)
			}
		}
		step("first", func() error { return nil }, 1)
		if call(ecArgs{1, 2, 99}) != 0 {
			t.Errorf("unrelated param changed recomputed")
		}
		step("tags of arg", func() error { return f.InvalidateTags(ctx, arg) }, 1)
		step("tags of other", func() error { return f.InvalidateTags(ctx, ecArgs{9, 9, 9}) }, 0)
		step("prefix", func() error { return f.InvalidatePrefix(ctx, arg) }, 1)
		step("global prefix", func() error { return cachier.InvalidatePrefix(ctx, st, "ppp:2") }, 1)
		step("global prefix other", func() error { return cachier.InvalidatePrefix(ctx, st, "ppp:22") }, 0)
		step("global tag", func() error { return cachier.InvalidateTags(ctx, st, "ttt:3") }, 1)
		step("static tag", func() error { return cachier.InvalidateTags(ctx, st, "static") }, 1)
		step("key", func() error { return f.Invalidate(ctx, ecArgs{1, 2, 100}) }, 1)
		step("clear", func() error { return f.Clear(ctx) }, 1)
		step("refresh", func() error { _, err := f.Refresh(ctx, arg); return err }, 0)
		k, _ := f.Key(arg)
		step("raw delete", func() error { return st.Delete(ctx, k) }, 1)
	})
}
