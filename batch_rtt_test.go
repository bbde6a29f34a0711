package cachier_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// TestBatchRoundTripsRedis counts the round trips of a batch on one Redis server: a
// warm batch is one MGET, whatever its size; a cold one, or one with some keys
// missing, four, whatever the number of keys: the MGET of the entries, the leases
// (one pipeline), the re-check of the entries under them with the function's epoch
// (one MGET), and the write of the results with the release of their leases and the
// epoch after the write (one pipeline of SetAndDelete scripts).
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
	const want = 4
	cold10, cold60 := call(args(0, 10)), call(args(100, 60))
	if cold10 != want || cold60 != want {
		t.Errorf("a cold batch took %d round trips for 10 keys and %d for 60; want %d", cold10, cold60, want)
	}
	// 90% cached: 54 of the 60 keys above, and 6 new ones.
	if part := call(args(106, 60)); part != want {
		t.Errorf("a batch of 60 keys, 6 missing, took %d round trips; want %d", part, want)
	}
	if n := computed.Load(); n != 79 {
		t.Errorf("computed %d keys, want 79", n)
	}
	if warm := call(args(100, 60)); warm != 1 {
		t.Errorf("a warm batch of 60 keys took %d round trips, want 1 (one MGET)", warm)
	}
}

// A batch whose epoch another process bumps (its Invalidate) while the batch function
// runs returns the results but does not keep them: the epoch it reads after the
// write, in the round trip of the write, differs from the one its entries recorded,
// and it deletes them again.
func TestBatchOnRedisDropsResultsOfAnInvalidatedComputation(t *testing.T) {
	st, _ := redisStore(t, "inv-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil)
	s := store.Adapt(st)
	began, gate := make(chan struct{}), make(chan struct{})
	fn := func(_ context.Context, args []int) (map[int]string, error) {
		close(began)
		<-gate
		m := make(map[int]string, len(args))
		for _, a := range args {
			m[a] = "v" + strconv.Itoa(a)
		}
		return m, nil
	}
	bt, err := cachier.WrapBatch(fn, cachier.Name(t.Name()), cachier.WithStore(s), cachier.LeaseTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		m, err := bt.Call(ctx, []int{1, 2, 3})
		if err == nil && len(m) != 3 {
			err = fmt.Errorf("Call returned %d results, want 3", len(m))
		}
		done <- err
	}()
	<-began
	// Another process's Invalidate: it bumps the function's epoch (its delete finds
	// nothing yet). The generation of this process does not move.
	if _, err := s.(store.Versioner).Bump(ctx, "ns:"+t.Name()); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, a := range []int{1, 2, 3} {
		k, err := bt.Key(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("entry of %d after the invalidation: %v; want it deleted (ErrNotFound)", a, err)
		}
	}
	if n := bt.Stats().Invalidated; n != 3 {
		t.Errorf("Stats().Invalidated = %d, want 3", n)
	}
}
