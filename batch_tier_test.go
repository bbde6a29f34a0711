package cachier

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
	"github.com/cachier-go/cachier/store/memstore"
)

// countingDriver is plainDriver (no notifications) that counts the reads of entries of
// namespace ns.
type countingDriver struct {
	plainDriver
	ns    string
	reads atomic.Int64
}

func (c *countingDriver) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	if k.Namespace == c.ns {
		c.reads.Add(1)
	}
	return c.plainDriver.Get(ctx, k)
}

func tierBatchFn(prefix string) func(context.Context, []int) (map[int]string, error) {
	return func(_ context.Context, args []int) (map[int]string, error) {
		m := make(map[int]string, len(args))
		for _, a := range args {
			m[a] = fmt.Sprintf("%s%d", prefix, a)
		}
		return m, nil
	}
}

// A warm batch whose keys the local tier holds makes no store read, with or without
// per-call options (the first through the same first level as a single Call, the
// second through the batched lookup).
func TestBatchLocalTierHitsReadNothing(t *testing.T) {
	const name = "tier/batch-reads"
	fs, err := filestore.New(&filestore.Options{Dir: t.TempDir()})
	must(t, err)
	defer fs.Close()
	cd := &countingDriver{plainDriver: plainDriver{fs, new(atomic.Bool)}, ns: name}
	clk := clock.NewFake(time.Now())
	b, err := WrapBatch(tierBatchFn("v"), Name(name), WithStore(store.Adapt(cd)), WithClock(clk), LocalTier(100, 0), LocalTierBound(time.Hour))
	must(t, err)
	wait := reconciled(t, b.f.local.sync)
	ctx := context.Background()
	args := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	call := func(opts ...Option) {
		t.Helper()
		m, err := b.Call(ctx, args, opts...)
		must(t, err)
		for _, a := range args {
			if m[a] != fmt.Sprintf("v%d", a) {
				t.Fatalf("got %v", m)
			}
		}
	}
	call() // computed and written; the tier starts
	wait() // its first reconcile drops the copies made before it
	call() // read from the store, kept locally
	before, st := cd.reads.Load(), b.Stats()
	call()
	call(MaxAge(time.Hour))
	if n := cd.reads.Load() - before; n != 0 {
		t.Fatalf("warm batches read %d entries from the store, want none", n)
	}
	// As for single calls, only the first level of calls without options counts
	// LocalHits; both count Hits.
	if st2 := b.Stats(); st2.Hits-st.Hits != 2*uint64(len(args)) || st2.LocalHits-st.LocalHits != uint64(len(args)) {
		t.Fatalf("%d hits, %d local; want %d and %d", st2.Hits-st.Hits, st2.LocalHits-st.LocalHits, 2*len(args), len(args))
	}
}

// A batch write moves the namespace's marker as a single write does, so that another
// process's local tier drops its copies at its next reconcile.
func TestBatchWriteMovesTheLocalTierMarker(t *testing.T) {
	const bound = time.Second
	clk := clock.NewFake(time.Now())
	stA, stB, _ := twoProcesses(t)
	var ca counted
	fa, err := Wrap(ca.fn, Name("tier/batch-marker"), WithStore(stA), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	must(t, err)
	bb, err := WrapBatch(tierBatchFn("from batch "), Name("tier/batch-marker"), WithStore(stB), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	must(t, err)
	wait := reconciled(t, fa.local.sync)
	v1 := tierCall(t, fa, 1)
	wait()
	// One more poll, so that the tier has seen the marker that fa's own write moved
	// (its first reconcile may have read the marker before that write moved it).
	clk.Advance(bound / 2)
	tierCall(t, fa, 1)
	wait()
	tierCall(t, fa, 1)
	hits := fa.Stats().LocalHits
	if v := tierCall(t, fa, 1); v != v1 || fa.Stats().LocalHits == hits {
		t.Fatal("the local tier does not serve")
	}
	if _, err := bb.Refresh(context.Background(), []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(bound / 2)
	tierCall(t, fa, 1) // due: starts the poll
	wait()
	if v := tierCall(t, fa, 1); v != "from batch 1" {
		t.Fatalf("after the batch's write and a poll, got %q, want the batch's result", v)
	}
}

// On the memory store a warm batch is answered by the typed first level, which is
// dropped exactly when the store's entry is: a Precache by another Func, or a tag
// invalidation, reaches the next batch.
func TestBatchTypedFirstLevel(t *testing.T) {
	st := store.Adapt(memstore.New(nil))
	ctx := context.Background()
	b, err := WrapBatch(tierBatchFn("v"), Name("tier/batch-hot"), WithStore(st), Tags("t"))
	must(t, err)
	g, err := Wrap(func(context.Context, int) (string, error) { return "g", nil }, Name("tier/batch-hot"), WithStore(st), Tags("t"))
	must(t, err)
	get := func() map[int]string {
		t.Helper()
		m, err := b.Call(ctx, []int{1, 2})
		must(t, err)
		return m
	}
	get() // computed
	get() // read, kept in the first level
	if n := b.f.hot.n.Load(); n != 2 {
		t.Fatalf("%d entries in the first level, want 2", n)
	}
	if m := get(); m[1] != "v1" || m[2] != "v2" {
		t.Fatalf("warm: %v", m)
	}
	must(t, g.Precache(ctx, 1, "pre"))
	if m := get(); m[1] != "pre" || m[2] != "v2" {
		t.Fatalf("after another Func's Precache: %v", m)
	}
	before := b.Stats().Computations
	must(t, InvalidateTags(ctx, st, "t"))
	if m := get(); m[1] != "v1" || b.Stats().Computations != before+2 {
		t.Fatalf("after InvalidateTags: %v, %d computations, want both computed again", m, b.Stats().Computations-before)
	}
}
