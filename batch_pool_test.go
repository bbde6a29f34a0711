package cachier_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// A batch reuses its lookup memory from call to call (issue #14): a key that was a hit
// in one call and is gone in the next is a miss there, computed again, never the last
// call's hit. Redis, because it has no typed first level to answer before the lookup.
func TestBatchLookupMemoryReused(t *testing.T) {
	st, _ := redisStore(t, "pool-0", nil)
	var computed atomic.Int64
	fn := func(_ context.Context, args []int) (map[int]string, error) {
		n := computed.Add(int64(len(args)))
		m := make(map[int]string, len(args))
		for _, a := range args {
			m[a] = strconv.Itoa(a) + "@" + strconv.FormatInt(n, 10)
		}
		return m, nil
	}
	bt, err := cachier.WrapBatch(fn, cachier.Name(t.Name()), cachier.WithStore(store.Adapt(st)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	args := []int{1, 2, 3}
	if _, err := bt.Call(ctx, args); err != nil {
		t.Fatal(err)
	}
	for round := range 20 { // the pool may drop what it is given (always may, under -race)
		if _, err := bt.Call(ctx, args); err != nil { // all hits: the lookup memory is full
			t.Fatal(err)
		}
		if err := bt.Invalidate(ctx, 2); err != nil {
			t.Fatal(err)
		}
		before := computed.Load()
		m, err := bt.Call(ctx, args)
		if err != nil {
			t.Fatal(err)
		}
		if got := computed.Load() - before; got != 1 {
			t.Fatalf("round %d: %d keys computed after invalidating one (results %v), want 1", round, got, m)
		}
	}
}
