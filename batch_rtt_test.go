package cachier_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// TestBatchRoundTripsRedis counts the round trips of a batch on one Redis server: a
// warm batch is one MGET, whatever its size, and a cold one takes the same small
// number for 10 keys as for 60 (its leases are taken and released in one round trip
// each, not one per key).
func TestBatchRoundTripsRedis(t *testing.T) {
	rt := &rttHook{}
	st, _ := redisStore(t, "rtt-"+strconv.FormatInt(time.Now().UnixNano(), 36), rt)
	var computed atomic.Int64
	fn := func(_ context.Context, args []int) (map[int]string, error) {
		computed.Add(int64(len(args)))
		m := make(map[int]string, len(args))
		for _, a := range args {
			m[a] = "v" + strconv.Itoa(a)
		}
		return m, nil
	}
	// LeaseTTL: no renewal falls due while the test runs, even on a slow machine.
	bt, err := cachier.WrapBatch(fn, cachier.Name(t.Name()), cachier.WithStore(store.Adapt(st)), cachier.LeaseTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	args := func(from, n int) []int {
		as := make([]int, n)
		for i := range as {
			as[i] = from + i
		}
		return as
	}
	call := func(as []int) int64 {
		t.Helper()
		rt.n.Store(0)
		m, err := bt.Call(ctx, as)
		if err != nil || len(m) != len(as) {
			t.Fatalf("Call: %d results, %v", len(m), err)
		}
		return rt.n.Load()
	}
	call(args(10_000, 3)) // the scripts are loaded once, the first time (NOSCRIPT)
	cold10, cold60 := call(args(0, 10)), call(args(100, 60))
	if cold10 != cold60 || cold60 > 10 {
		t.Errorf("a cold batch took %d round trips for 10 keys and %d for 60; want the same, at most 10", cold10, cold60)
	}
	if n := computed.Load(); n != 73 {
		t.Errorf("computed %d keys, want 73", n)
	}
	if warm := call(args(100, 60)); warm != 1 {
		t.Errorf("a warm batch of 60 keys took %d round trips, want 1 (one MGET)", warm)
	}
	t.Logf("round trips: cold 10 keys %d, cold 60 keys %d, warm 60 keys 1", cold10, cold60)
}
