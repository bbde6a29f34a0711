package cachier_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

// TestPeek checks that Peek decides staleness as Call does: the function's
// StaleAfter, the call's MaxAge, a per-entry StaleAfterFunc limit, and tag
// invalidation; and that it never computes.
func TestPeek(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	st := memstore.New(nil)
	calls := 0
	fn := func(_ context.Context, x int) (int, error) { calls++; return x * 10, nil }
	f, err := cachier.Wrap(fn, cachier.Name("peek"), cachier.WithStore(st), cachier.WithClock(clock),
		cachier.StaleAfter(time.Hour),
		cachier.StaleAfterFunc(func(x int, _ int) time.Duration {
			if x == 2 {
				return time.Minute // entry 2 has its own, shorter limit
			}
			return 0
		}),
		cachier.TagsOf(func(x int) []string { return []string{"t"} }))
	if err != nil {
		t.Fatal(err)
	}
	if _, fr, err := f.Peek(ctx, 1); fr != cachier.Missing || err != nil {
		t.Fatalf("Peek of nothing = %v, %v", fr, err)
	}
	f.Call(ctx, 1)
	f.Call(ctx, 2)
	if v, fr, _ := f.Peek(ctx, 1); fr != cachier.Fresh || v != 10 {
		t.Fatalf("Peek of a fresh entry = %v, %v", v, fr)
	}
	clock.Advance(2 * time.Minute)
	if v, fr, _ := f.Peek(ctx, 2); fr != cachier.Stale || v != 20 {
		t.Fatalf("Peek past the entry's own limit = %v, %v; want stale", v, fr)
	}
	if _, fr, _ := f.Peek(ctx, 1); fr != cachier.Fresh {
		t.Fatalf("Peek within StaleAfter = %v", fr)
	}
	if _, fr, _ := f.Peek(ctx, 1, cachier.MaxAge(time.Minute)); fr != cachier.Stale {
		t.Fatalf("Peek with MaxAge = %v, want stale", fr)
	}
	if err := cachier.InvalidateTags(ctx, st, "t"); err != nil {
		t.Fatal(err)
	}
	if _, fr, _ := f.Peek(ctx, 1); fr != cachier.Missing {
		t.Fatalf("Peek of an invalidated entry = %v, want missing", fr)
	}
	if calls != 2 {
		t.Fatalf("fn ran %d times, want 2: Peek must not compute", calls)
	}
}

func ExampleFunc_Peek() {
	ctx := context.Background()
	f, _ := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x * 2, nil },
		cachier.Name("example-peek"), cachier.WithStore(memstore.New(nil)))
	_, fr, _ := f.Peek(ctx, 21)
	fmt.Println(fr)
	f.Call(ctx, 21)
	v, fr, _ := f.Peek(ctx, 21)
	fmt.Println(v, fr)
	// Output:
	// missing
	// 42 fresh
}
