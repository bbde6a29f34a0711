package cachier_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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

// A batch reuses its per-call memory (its keys' index, items and slots) from call to
// call when every key was a hit: calls whose arguments overlap, repeat, or are a
// subset of the last call's still get their own arguments' results.
func TestBatchCallMemoryReusedAcrossOverlappingCalls(t *testing.T) {
	st, _ := redisStore(t, uniquePrefix("pool-1"), nil) // nothing from an earlier -count
	r := &batchRecorder{}
	bt := mustBatch(t, r, cachier.Name(t.Name()), cachier.WithStore(store.Adapt(st)))
	ctx := context.Background()
	if _, err := bt.Call(ctx, span(0, 99)); err != nil {
		t.Fatal(err)
	}
	for round := range 20 { // the pool may drop what it is given (always may, under -race)
		for _, args := range [][]int{span(0, 49), span(25, 74), {30, 30, 31, 30}, span(60, 99), {7}} {
			m, err := bt.Call(ctx, args)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			wantResults(t, m, slices.Compact(slices.Sorted(slices.Values(args))))
		}
	}
	if n := r.ncalls(); n != 1 {
		t.Fatalf("the function ran %d times, want once (every later key a hit)", n)
	}
}

// A computation that goes on after its caller left (ctx done) keeps the items it
// computes: calls that reuse pooled memory meanwhile do not change which keys its
// results are stored under.
func TestBatchComputationPastItsCallerKeepsItsKeys(t *testing.T) {
	st, _ := redisStore(t, uniquePrefix("pool-2"), nil)
	ps := store.Adapt(st)
	r := &batchRecorder{gate: make(chan struct{}), began: make(chan []int, 1), gated: func(args []int) bool { return args[0] >= 100 }}
	bt := mustBatch(t, r, cachier.Name(t.Name()), cachier.WithStore(ps))
	ctx := context.Background()
	if _, err := bt.Call(ctx, span(0, 49)); err != nil {
		t.Fatal(err)
	}
	<-r.began // 0..49 computed
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := bt.Call(cctx, span(100, 109))
		done <- err
	}()
	<-r.began // the computation of 100..109 runs, held at the gate
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Call with its ctx cancelled = %v, want context.Canceled", err)
	}
	for range 20 { // warm calls, in the memory the pool hands out
		m, err := bt.Call(ctx, span(0, 49))
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, m, span(0, 49))
	}
	close(r.gate)
	if err := bt.Close(ctx); err != nil { // waits for the computation to store its results
		t.Fatal(err)
	}
	// Another batch of the same name reads what it stored: each key its own result.
	r2 := &batchRecorder{}
	bt2 := mustBatch(t, r2, cachier.Name(t.Name()), cachier.WithStore(ps))
	m, err := bt2.Call(ctx, span(0, 49))
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, m, span(0, 49))
	m, err = bt2.Call(ctx, span(100, 109))
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, m, span(100, 109))
	if got := r2.computed(); len(got) != 0 {
		t.Fatalf("computed %v again, want every key stored by the computation its caller left", got)
	}
}

var prefixes atomic.Int64

// uniquePrefix returns a store prefix no earlier test of this process used.
func uniquePrefix(p string) string {
	return p + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(prefixes.Add(1), 10)
}
