package cachier_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// callCtxKey marks the context of the call whose round trips ctxHook counts.
type callCtxKey struct{}

// ctxHook counts the round trips (a command, or a pipeline) sent under a context
// that carries callCtxKey: those of one call, not those a local tier's reconcile
// sends in the background at the same time.
type ctxHook struct{ n atomic.Int64 }

func (h *ctxHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *ctxHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(callCtxKey{}) != nil {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *ctxHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(callCtxKey{}) != nil {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// TestBatchRoundTripsRedisLocalTier: with a local tier, a batch with keys to compute
// takes the round trips it takes without one (four on one Redis server): the move of
// the namespace's marker, which tells the other processes' local tiers, is sent in
// the pipeline of the writes, after them, not in a round trip of its own. The marker
// does move.
func TestBatchRoundTripsRedisLocalTier(t *testing.T) {
	rt := &ctxHook{}
	st, _ := redisStore(t, "rtt-tier-"+strconv.FormatInt(time.Now().UnixNano(), 36), rt)
	fn := func(_ context.Context, args []int) (map[int]string, error) {
		m := make(map[int]string, len(args))
		for _, a := range args {
			m[a] = "v" + strconv.Itoa(a)
		}
		return m, nil
	}
	s := store.Adapt(st)
	bt, err := cachier.WrapBatch(fn, cachier.Name(t.Name()), cachier.WithStore(s), cachier.LeaseTTL(time.Hour), cachier.LocalTier(1000, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close(context.Background())
	marker := store.Key{Namespace: "cachier~tier", ID: "ns:" + t.Name()}
	readMarker := func() string {
		t.Helper()
		e, err := s.Get(context.Background(), marker)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return string(e.Value)
	}
	ctx := context.WithValue(context.Background(), callCtxKey{}, true)
	call := func(from, n int) int64 {
		t.Helper()
		as := make([]int, n)
		for i := range as {
			as[i] = from + i
		}
		rt.n.Store(0)
		m, err := bt.Call(ctx, as)
		if err != nil || len(m) != len(as) {
			t.Fatalf("Call: %d results, %v", len(m), err)
		}
		return rt.n.Load()
	}
	call(10_000, 3) // the scripts are loaded once, the first time (NOSCRIPT)
	call(100, 60)
	m0 := readMarker()
	// 90% cached: 54 of the 60 keys above, and 6 new ones.
	if n := call(106, 60); n != 4 {
		t.Errorf("with a local tier, a batch of 60 keys, 6 missing, took %d round trips; want 4, as without one", n)
	}
	if m1 := readMarker(); m1 == m0 {
		t.Errorf("the batch's write did not move the marker %s", marker)
	}
}

// On Redis, a batch of cached arguments and new ones is answered from the writer's
// local tier batch after batch (issue #14): its own marker moves, and the pub/sub
// notifications they bring (the Store's wake-up and one per watch of the marker),
// drop none of its copies.
func TestBatchLocalTierKeepsOwnCopiesRedis(t *testing.T) {
	st, _ := redisStore(t, "tier-own-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil)
	fn := func(_ context.Context, args []int) (map[int][]byte, error) {
		m := make(map[int][]byte, len(args))
		for _, a := range args {
			m[a] = benchPayload
		}
		return m, nil
	}
	bt, err := cachier.WrapBatch(fn, cachier.Name("tier/own-redis"), cachier.WithStore(store.Adapt(st)), cachier.LocalTier(10_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func() uint64 {
		t.Helper()
		h := bt.Stats().LocalHits
		if m, err := bt.Call(ctx, benchBatchArgs(90)); err != nil || len(m) != benchBatchSize {
			t.Fatalf("Call: %d results, %v", len(m), err)
		}
		return bt.Stats().LocalHits - h
	}
	// Until the tier serves: its first reconciles drop what came before them.
	for i := 0; call() != 90; i++ {
		if i == 100 {
			t.Fatal("the local tier never served the 90 cached arguments")
		}
	}
	for i := range 20 {
		if n := call(); n != 90 {
			t.Fatalf("batch %d after its own writes: %d of the 90 cached arguments from the local tier, want all", i, n)
		}
	}
}
