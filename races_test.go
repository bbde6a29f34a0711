package cachier_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
	"github.com/cachier-go/cachier/store/memstore"
)

// source is data a cached function reads: the first read can be held until the test
// lets it go, so that the data changes while a computation that read it runs.
type source struct {
	data    atomic.Int64
	runs    atomic.Int64
	started chan struct{} // receives when the held run has read the data
	release chan struct{} // closed to let the held run return
}

func newSource(v int64) *source {
	s := &source{started: make(chan struct{}, 1), release: make(chan struct{})}
	s.data.Store(v)
	return s
}

// fn reads the data; the first run holds until release.
func (s *source) fn(_ context.Context, _ int) (int64, error) {
	v := s.data.Load()
	if s.runs.Add(1) == 1 {
		s.started <- struct{}{}
		<-s.release
	}
	return v, nil
}

// Finding 1: Invalidate or Clear while a computation that read the old data runs
// must not leave its result fresh, in this process or (file store) any other; and a
// caller after the invalidation does not join that computation.
func TestInvalidateDuringComputationLeavesNoOldResult(t *testing.T) {
	for _, how := range []string{"Invalidate", "Clear"} {
		t.Run(how, func(t *testing.T) {
			stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
				src := newSource(1)
				f, err := cachier.Wrap(src.fn, cachier.Name("races/inv-"+how), cachier.WithStore(newStore(t)))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				old := make(chan int64, 1)
				go func() { v, _ := f.Call(ctx, 7); old <- v }()
				<-src.started // it read 1
				src.data.Store(2)
				var err2 error
				if how == "Invalidate" {
					err2 = f.Invalidate(ctx, 7)
				} else {
					err2 = f.Clear(ctx)
				}
				if err2 != nil {
					t.Fatal(err2)
				}
				after := make(chan int64, 1)
				go func() { v, _ := f.Call(ctx, 7); after <- v }()
				waitFor(t, "the call after "+how+" to miss", func() bool { return f.Stats().Misses == 2 })
				close(src.release)
				if v := <-old; v != 1 {
					t.Fatalf("the call before %s got %d, want 1", how, v)
				}
				if v := <-after; v != 2 {
					t.Fatalf("a call after %s got %d from the computation that began before it", how, v)
				}
				for range 3 {
					if v, err := f.Call(ctx, 7); v != 2 || err != nil {
						t.Fatalf("after %s: %d, %v; the old result was stored as fresh", how, v, err)
					}
				}
			})
		})
	}
}

// Finding 2: Refresh answers with a computation that began after it was asked for:
// it joins no computation under way in the process, and takes no result that one
// stores.
func TestRefreshDoesNotJoinAnEarlierComputation(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		src := newSource(1)
		f, err := cachier.Wrap(src.fn, cachier.Name("races/refresh"), cachier.WithStore(newStore(t)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		old := make(chan int64, 1)
		go func() { v, _ := f.Call(ctx, 7); old <- v }()
		<-src.started
		src.data.Store(2)
		refreshed := make(chan int64, 1)
		go func() { v, _ := f.Refresh(ctx, 7); refreshed <- v }()
		waitFor(t, "Refresh to miss", func() bool { return f.Stats().Misses == 2 })
		close(src.release)
		if v := <-old; v != 1 {
			t.Fatalf("the call before Refresh got %d, want 1", v)
		}
		if v := <-refreshed; v != 2 {
			t.Fatalf("Refresh returned %d, computed before it was asked for", v)
		}
		if v, _ := f.Call(ctx, 7); v != 2 {
			t.Fatalf("after Refresh: %d", v)
		}
	})
}

// Finding 2: Refresh is not satisfied by a NextTime background refresh already under
// way: that one read the data before Refresh was asked for.
func TestRefreshDoesNotTakeABackgroundRefresh(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		clk := newClock()
		src := newSource(1)
		src.runs.Store(-1) // the first run (the cold miss) is not held; the second is
		f, err := cachier.Wrap(src.fn, cachier.Name("races/bg"), cachier.WithStore(newStore(t)), cachier.WithClock(clk),
			cachier.StaleAfter(time.Minute), cachier.NextTime(true))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if v, _ := f.Call(ctx, 7); v != 1 {
			t.Fatalf("cold call: %d", v)
		}
		src.data.Store(2)
		src.runs.Store(0)
		clk.Advance(2 * time.Minute)
		if v, _ := f.Call(ctx, 7); v != 1 { // stale: served, refresh starts and reads 2 ...
			t.Fatalf("stale call: %d", v)
		}
		<-src.started
		src.data.Store(3) // ... and the data changes again before it ends
		refreshed := make(chan int64, 1)
		go func() { v, _ := f.Refresh(ctx, 7); refreshed <- v }()
		waitFor(t, "Refresh to miss", func() bool { return f.Stats().Misses == 2 })
		clk.Advance(time.Second) // the background refresh stores after Refresh began
		close(src.release)
		if v := <-refreshed; v != 3 {
			t.Fatalf("Refresh returned %d from the background refresh that began before it", v)
		}
		waitFor(t, "the background refresh to end", func() bool { return f.Stats().Refreshes+f.Stats().RefreshErrors == 1 })
		if v, _ := f.Call(ctx, 7); v != 3 {
			t.Fatalf("after Refresh: %d; the older background refresh overwrote it", v)
		}
	})
}

// Finding 4: an entry's stamp is trusted only within MaxClockSkew. A writer whose
// clock runs 10s ahead stamps entries 10s in the future: they are not fresh for a
// reader with MaxAge(500ms) a second later; a stamp within the bound counts as age 0.
func TestClockSkewBound(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		st := newStore(t)
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var runs atomic.Int64
		fn := func(_ context.Context, x int) (int64, error) { return runs.Add(1), nil }
		wrap := func(c *clock.Fake) *cachier.Func[int, int64] {
			f, err := cachier.Wrap(fn, cachier.Name("races/skew"), cachier.WithStore(st), cachier.WithClock(c))
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		ctx := context.Background()
		reader := clock.NewFake(base)
		r := wrap(reader)
		for _, tc := range []struct {
			ahead time.Duration
			hit   bool
		}{
			{ahead: 10 * time.Second, hit: false}, // beyond the bound: age unknown
			{ahead: 800 * time.Millisecond, hit: true},
		} {
			writer := clock.NewFake(reader.Now().Add(tc.ahead))
			w := wrap(writer)
			if _, err := w.Refresh(ctx, 1); err != nil {
				t.Fatal(err)
			}
			reader.Advance(100 * time.Millisecond)
			before := r.Stats().Hits
			r.Call(ctx, 1, cachier.MaxAge(500*time.Millisecond))
			if hit := r.Stats().Hits > before; hit != tc.hit {
				t.Fatalf("writer %v ahead: hit = %v, want %v", tc.ahead, hit, tc.hit)
			}
		}
		// With a bound of zero, no future stamp is trusted.
		writer := clock.NewFake(reader.Now().Add(100 * time.Millisecond))
		if _, err := wrap(writer).Refresh(ctx, 1); err != nil {
			t.Fatal(err)
		}
		before := r.Stats().Hits
		r.Call(ctx, 1, cachier.MaxClockSkew(0), cachier.MaxAge(time.Hour))
		if r.Stats().Hits != before {
			t.Fatal("MaxClockSkew(0) trusted a stamp in the future")
		}
	})
}

// Finding 4: a Refresh computes even when the computation it waited for, in another
// process (here another Func on the same file store), stamped its entry 10s ahead.
func TestRefreshComputesWhateverTheWriterClock(t *testing.T) {
	st := newFileStore(t)
	src := newSource(1)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var readerRuns atomic.Int64
	w, _ := cachier.Wrap(src.fn, cachier.Name("races/skew-refresh"), cachier.WithStore(st), cachier.WithClock(clock.NewFake(base.Add(10*time.Second))))
	r, _ := cachier.Wrap(func(ctx context.Context, x int) (int64, error) { readerRuns.Add(1); return src.fn(ctx, x) },
		cachier.Name("races/skew-refresh"), cachier.WithStore(st), cachier.WithClock(clock.NewFake(base)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go w.Call(ctx, 1)
	<-src.started
	src.data.Store(2)
	refreshed := make(chan int64, 1)
	go func() { v, _ := r.Refresh(ctx, 1); refreshed <- v }()
	waitFor(t, "Refresh to wait for the lease", func() bool { return r.Stats().Waits == 1 })
	close(src.release)
	if v := <-refreshed; v != 2 || readerRuns.Load() != 1 {
		t.Fatalf("Refresh returned %d after %d computations, want 2 from its own", v, readerRuns.Load())
	}
}

// writeGate holds the first write of an entry of namespace ns until the test lets it
// go: an invalidation can then land between a computation's last check and its write.
type writeGate struct {
	ns      string
	once    sync.Once
	setting chan struct{} // closed when the held write begins
	proceed chan struct{} // closed by the test to let it go on
}

func newWriteGate(ns string) *writeGate {
	return &writeGate{ns: ns, setting: make(chan struct{}), proceed: make(chan struct{})}
}

func (g *writeGate) hold(k store.Key) {
	if k.Namespace == g.ns {
		g.once.Do(func() {
			close(g.setting)
			<-g.proceed
		})
	}
}

// gatedSets is a file store whose first write of the namespace waits for the test.
type gatedSets struct {
	*filestore.Store
	*writeGate
}

func (g *gatedSets) Set(ctx context.Context, k store.Key, e store.Entry) error {
	g.hold(k)
	return g.Store.Set(ctx, k, e)
}

// gatedLive is a memory store whose first write of the namespace waits for the test.
type gatedLive struct {
	*memstore.Store
	*writeGate
}

func (g *gatedLive) SetLive(ctx context.Context, k store.Key, e store.Entry, v any) error {
	g.hold(k)
	return g.Store.SetLive(ctx, k, e, v)
}

// SetLazy is the write of a memory miss that makes no bytes (livebytes.go).
func (g *gatedLive) SetLazy(ctx context.Context, k store.Key, e store.Entry, v any, size int64, enc store.Encoder) error {
	g.hold(k)
	return g.Store.SetLazy(ctx, k, e, v, size, enc)
}

// invalidateBetweenCheckAndWrite has Func a compute 1 and hold its write at g, lets
// invalidate run, changing the data to 2, then lets the write go: Func b, of the same
// namespace, must then get 2, never the 1 written after the invalidation.
func invalidateBetweenCheckAndWrite(t *testing.T, st store.Driver, g *writeGate, invalidate func(a, b *cachier.Func[int, int64])) {
	t.Helper()
	var data atomic.Int64
	data.Store(1)
	fn := func(context.Context, int) (int64, error) { return data.Load(), nil }
	a, _ := cachier.Wrap(fn, cachier.Name(g.ns), cachier.WithStore(st))
	b, _ := cachier.Wrap(fn, cachier.Name(g.ns), cachier.WithStore(st))
	ctx := context.Background()
	got := make(chan int64, 1)
	go func() { v, _ := a.Call(ctx, 7); got <- v }()
	<-g.setting // a computed 1, made its last check, and is writing
	data.Store(2)
	invalidate(a, b)
	close(g.proceed)
	if v := <-got; v != 1 {
		t.Fatalf("a got %d", v)
	}
	for range 3 {
		if v, err := b.Call(ctx, 7); v != 2 || err != nil {
			t.Fatalf("after Invalidate: %d, %v; the result written after it was kept", v, err)
		}
	}
}

// Finding 1, the narrowest case: another process invalidates after the computation
// read the epoch and before its write. The writer checks again after writing, and
// deletes what it wrote. The other process is played by the store calls its
// Invalidate makes (bump the epoch, then delete).
func TestInvalidateBetweenCheckAndWrite(t *testing.T) {
	g := newWriteGate("races/sliver")
	st := &gatedSets{Store: newFileDriver(t), writeGate: g}
	invalidateBetweenCheckAndWrite(t, st, g, func(a, _ *cachier.Func[int, int64]) {
		invalidateElsewhere(t, st, a.Namespace(), 7, a.Key)
	})
}

// On a memory store, another Func of the namespace (which takes its own lock)
// invalidates between the writer's generation check and its write: the writer checks
// the generation again after writing and deletes what it wrote.
func TestInvalidateThroughAnotherFuncBetweenCheckAndWrite(t *testing.T) {
	g := newWriteGate("races/sliver-mem")
	invalidateBetweenCheckAndWrite(t, &gatedLive{Store: memstore.New(nil), writeGate: g}, g, func(_, b *cachier.Func[int, int64]) {
		if err := b.Invalidate(context.Background(), 7); err != nil {
			t.Error(err)
		}
	})
}

// invalidateElsewhere does what another process's Invalidate(arg) does to the store:
// bump the function's invalidation epoch, then delete the entry.
func invalidateElsewhere[A any](t *testing.T, st store.Driver, ns string, arg A, key func(A) (store.Key, error)) {
	t.Helper()
	ctx := context.Background()
	s := store.Adapt(st)
	if _, err := s.(store.Versioner).Bump(ctx, "ns:"+ns); err != nil {
		t.Fatal(err)
	}
	k, err := key(arg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
}

// The same for a batch: on a memory store, another Func of the namespace invalidates
// between the batch's generation check and its write. The batch checks the
// generation again after writing and deletes what it wrote.
func TestBatchInvalidateThroughAnotherFuncBetweenCheckAndWrite(t *testing.T) {
	g := newWriteGate("races/batch-sliver-mem")
	st := &gatedLive{Store: memstore.New(nil), writeGate: g}
	var data atomic.Int64
	data.Store(1)
	batchFn := func(_ context.Context, args []int) (map[int]int64, error) {
		m := make(map[int]int64, len(args))
		for _, a := range args {
			m[a] = data.Load()
		}
		return m, nil
	}
	a, err := cachier.WrapBatch(batchFn, cachier.Name(g.ns), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	b, err := cachier.Wrap(func(context.Context, int) (int64, error) { return data.Load(), nil }, cachier.Name(g.ns), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got := make(chan int64, 1)
	go func() { m, _ := a.Call(ctx, []int{7}); got <- m[7] }()
	<-g.setting // a computed 1, made its last check, and is writing
	data.Store(2)
	if err := b.Invalidate(ctx, 7); err != nil {
		t.Fatal(err)
	}
	close(g.proceed)
	if v := <-got; v != 1 {
		t.Fatalf("the batch got %d", v)
	}
	for range 3 {
		if v, err := b.Call(ctx, 7); v != 2 || err != nil {
			t.Fatalf("after Invalidate: %d, %v; the batch's result written after it was kept", v, err)
		}
		if m, err := a.Call(ctx, []int{7}); m[7] != 2 || err != nil {
			t.Fatalf("after Invalidate, the batch: %v, %v; its result written after it was kept", m, err)
		}
	}
}
