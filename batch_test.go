package cachier_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/internal/tier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
	"github.com/cachier-go/cachier/store/memstore"
)

// batchRecorder is a batch function that records the arguments of each of its calls. It
// returns "v<n>" for every argument, except those that absent says it has no result
// for.
type batchRecorder struct {
	mu     sync.Mutex
	calls  [][]int
	absent func(int) bool
	fail   error
	gate   chan struct{} // if set, calls that get gated arguments wait on it
	gated  func([]int) bool
	began  chan []int // if set, receives each call's arguments as it begins
}

func (r *batchRecorder) fn(ctx context.Context, args []int) (map[int]string, error) {
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(args))
	fail := r.fail
	r.mu.Unlock()
	if r.began != nil {
		r.began <- slices.Clone(args)
	}
	if r.gate != nil && (r.gated == nil || r.gated(args)) {
		<-r.gate
	}
	if fail != nil {
		return nil, fail
	}
	out := make(map[int]string, len(args))
	for _, a := range args {
		if r.absent == nil || !r.absent(a) {
			out[a] = "v" + strconv.Itoa(a)
		}
	}
	return out, nil
}

// computed returns every argument computed so far, sorted.
func (r *batchRecorder) computed() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []int
	for _, c := range r.calls {
		all = append(all, c...)
	}
	slices.Sort(all)
	return all
}

func (r *batchRecorder) ncalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func span(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func mustBatch(t testing.TB, r *batchRecorder, opts ...cachier.Option) *cachier.Batch[int, string] {
	t.Helper()
	b, err := cachier.WrapBatch(r.fn, append([]cachier.Option{cachier.Name("batch-test")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantResults(t testing.TB, got map[int]string, args []int) {
	t.Helper()
	if len(got) != len(args) {
		t.Fatalf("got %d results %v, want %d", len(got), got, len(args))
	}
	for _, a := range args {
		if got[a] != "v"+strconv.Itoa(a) {
			t.Fatalf("result for %d = %q, want v%d", a, got[a], a)
		}
	}
}

// The keys missing from the store are computed in one call of the function; the
// others are hits, counted per key.
func TestBatchComputesOnlyMissingKeysInOneCall(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		ctx := context.Background()
		r := &batchRecorder{}
		b := mustBatch(t, r, cachier.WithStore(newStore(t)))
		got, err := b.Call(ctx, span(1, 10))
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, got, span(1, 10))
		got, err = b.Call(ctx, append(span(6, 15), 7, 15)) // repeated arguments too
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, got, span(6, 15))
		if r.ncalls() != 2 {
			t.Fatalf("function called %d times (%v), want 2", r.ncalls(), r.calls)
		}
		if last := r.calls[1]; !slices.Equal(last, span(11, 15)) && !sameSet(last, span(11, 15)) {
			t.Fatalf("second call computed %v, want 11..15", last)
		}
		st := b.Stats()
		if st.Hits != 5 || st.Misses != 15 || st.Computations != 15 {
			t.Fatalf("stats hits=%d misses=%d computations=%d, want 5, 15, 15 (per key)", st.Hits, st.Misses, st.Computations)
		}
		if got, err := b.Call(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("empty batch = %v, %v; want an empty map", got, err)
		}
	})
}

func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func singleLookup(_ context.Context, a int) (string, error) { return "single" + strconv.Itoa(a), nil }

// A batch and a single call of the same name share one entry per argument, both ways.
func TestBatchAndSingleCallShareEntries(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		ctx := context.Background()
		st := newStore(t)
		r := &batchRecorder{}
		b := mustBatch(t, r, cachier.WithStore(st))
		f, err := cachier.Wrap(singleLookup, cachier.Name("batch-test"), cachier.WithStore(st))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []int{1, 2, 3} {
			kb, _ := b.Key(a)
			kf, _ := f.Key(a)
			if kb != kf {
				t.Fatalf("batch key %v != single key %v", kb, kf)
			}
		}
		if _, err := b.Call(ctx, []int{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if v, err := f.Call(ctx, 2); err != nil || v != "v2" {
			t.Fatalf("single call after the batch = %q, %v; want the batch's v2", v, err)
		}
		if n := f.Stats().Computations; n != 0 {
			t.Fatalf("single call computed %d times, want a hit", n)
		}
		if _, err := f.Call(ctx, 7); err != nil {
			t.Fatal(err)
		}
		got, err := b.Call(ctx, []int{7, 8})
		if err != nil {
			t.Fatal(err)
		}
		if got[7] != "single7" || got[8] != "v8" {
			t.Fatalf("batch after a single call = %v, want the single call's result for 7", got)
		}
		if !slices.Equal(r.computed(), []int{1, 2, 3, 8}) {
			t.Fatalf("batch function computed %v, want 1 2 3 8", r.computed())
		}
		if v, err := b.CallOne(ctx, 3); err != nil || v != "v3" {
			t.Fatalf("CallOne(3) = %q, %v", v, err)
		}
	})
}

// Invalidating a tag drops the entries of the batch's arguments that carry it, and
// the next batch recomputes them, in one call.
func TestBatchInvalidationByTag(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		ctx := context.Background()
		st := newStore(t)
		r := &batchRecorder{}
		b := mustBatch(t, r, cachier.WithStore(st), cachier.Tags("all"),
			cachier.TagsOf(func(a int) []string { return []string{"parity:" + strconv.Itoa(a%2)} }))
		if _, err := b.Call(ctx, span(1, 6)); err != nil {
			t.Fatal(err)
		}
		if err := b.InvalidateTags(ctx, 2); err != nil { // parity:0
			t.Fatal(err)
		}
		got, err := b.Call(ctx, span(1, 6))
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, got, span(1, 6))
		if r.ncalls() != 2 || !sameSet(r.calls[1], []int{2, 4, 6}) {
			t.Fatalf("after invalidating parity:0, calls = %v; want a second call of 2 4 6", r.calls)
		}
		if err := cachier.InvalidateTags(ctx, st, "all"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Call(ctx, span(1, 6)); err != nil {
			t.Fatal(err)
		}
		if r.ncalls() != 3 || !sameSet(r.calls[2], span(1, 6)) {
			t.Fatalf("after invalidating the tag all, calls = %v; want a third call of 1..6", r.calls)
		}
		if inv := b.Stats().Invalidated; inv != 9 {
			t.Fatalf("Stats.Invalidated = %d, want 9 (3 then 6 entries)", inv)
		}
		// Per key: Invalidate drops one argument's entry.
		if err := b.Invalidate(ctx, 5); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Call(ctx, span(1, 6)); err != nil {
			t.Fatal(err)
		}
		if r.ncalls() != 4 || !slices.Equal(r.calls[3], []int{5}) {
			t.Fatalf("after Invalidate(5), calls = %v; want a fourth call of 5", r.calls)
		}
	})
}

// Without CacheMissing, an argument the function does not return is absent and asked
// for again next time.
func TestBatchKeysNotReturnedAreComputedAgain(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		ctx := context.Background()
		r := &batchRecorder{absent: func(a int) bool { return a%2 == 1 }}
		b := mustBatch(t, r, cachier.WithStore(newStore(t)))
		got, err := b.Call(ctx, span(1, 4))
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, got, []int{2, 4})
		if _, err := b.Call(ctx, span(1, 4)); err != nil {
			t.Fatal(err)
		}
		if r.ncalls() != 2 || !sameSet(r.calls[1], []int{1, 3}) {
			t.Fatalf("calls = %v; want the absent 1 and 3 asked for again", r.calls)
		}
		if _, err := b.CallOne(ctx, 3); !errors.Is(err, cachier.ErrNoResult) {
			t.Fatalf("CallOne of an absent argument = %v, want ErrNoResult", err)
		}
	})
}

// With CacheMissing, "not found" is remembered for its own TTL, then asked again.
func TestBatchCacheMissingRemembersNotFoundForItsTTL(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		ctx := context.Background()
		clk := clock.NewFake(time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC)) // later than real time: see newClock
		r := &batchRecorder{absent: func(a int) bool { return a%2 == 1 }}
		st := newStore(t)
		b := mustBatch(t, r, cachier.WithStore(st), cachier.WithClock(clk), cachier.StaleAfter(time.Hour), cachier.CacheMissing(time.Minute))
		if _, err := b.Call(ctx, span(1, 4)); err != nil {
			t.Fatal(err)
		}
		got, err := b.Call(ctx, span(1, 4))
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, got, []int{2, 4})
		if _, err := b.CallOne(ctx, 1); !errors.Is(err, cachier.ErrNoResult) {
			t.Fatalf("CallOne of a remembered absent argument = %v, want ErrNoResult", err)
		}
		if r.ncalls() != 1 {
			t.Fatalf("calls = %v; want the not-found records to answer", r.calls)
		}
		clk.Advance(time.Minute)
		if _, err := b.Call(ctx, span(1, 4)); err != nil {
			t.Fatal(err)
		}
		if r.ncalls() != 2 || !sameSet(r.calls[1], []int{1, 3}) {
			t.Fatalf("calls = %v; want 1 and 3 asked for again after their TTL (and 2, 4 still fresh)", r.calls)
		}
		// A plain Func sharing the namespace sees a not-found record as a miss, never
		// as a value.
		f, err := cachier.Wrap(singleLookup, cachier.Name("batch-test"), cachier.WithStore(st), cachier.WithClock(clk))
		if err != nil {
			t.Fatal(err)
		}
		if v, err := f.Call(ctx, 3); err != nil || v != "single3" {
			t.Fatalf("single call over a not-found record = %q, %v; want it computed", v, err)
		}
	})
}

// A failing function fails every key it was asked for, with its error; the hits are
// still returned, and nothing is stored.
func TestBatchFunctionErrorFailsItsKeysOnly(t *testing.T) {
	ctx := context.Background()
	r := &batchRecorder{}
	st := newFileStore(t)
	b := mustBatch(t, r, cachier.WithStore(st))
	if _, err := b.Call(ctx, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("upstream down")
	r.fail = boom
	got, err := b.Call(ctx, span(1, 4))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the function's error", err)
	}
	wantResults(t, got, []int{1, 2})
	r.fail = nil
	if _, err := b.Call(ctx, span(1, 4)); err != nil {
		t.Fatal(err)
	}
	if !sameSet(r.calls[2], []int{3, 4}) {
		t.Fatalf("calls = %v; want 3 and 4 computed again after the failure", r.calls)
	}
	if st := b.Stats(); st.ComputeErrors != 2 {
		t.Fatalf("ComputeErrors = %d, want 2 (per key)", st.ComputeErrors)
	}
}

// partialStore fails SetMany for the keys whose ID is in bad.
type partialStore struct {
	*filestore.Store
	bad map[string]bool
}

func (p *partialStore) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	return store.GetMany(ctx, p.Store, ks)
}

func (p *partialStore) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	errs := make([]error, len(ks))
	for i, k := range ks {
		if p.bad[k.ID] {
			errs[i] = errors.New("disk full")
			continue
		}
		errs[i] = p.Set(ctx, k, es[i])
	}
	return errs, nil
}

// A store that fails to write some keys: those are still returned, not stored, and
// counted; the call does not fail.
func TestBatchStoreFailingForSomeKeys(t *testing.T) {
	ctx := context.Background()
	logger, logs := testLogger()
	ps := &partialStore{Store: newFileDriver(t), bad: map[string]bool{}}
	r := &batchRecorder{}
	clk := clock.NewFake(time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC)) // later than real time: see newClock
	b := mustBatch(t, r, cachier.WithStore(ps), cachier.WithLogger(logger), cachier.WithClock(clk))
	k2, _ := b.Key(2)
	ps.bad[k2.ID] = true
	got, err := b.Call(ctx, span(1, 3))
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, got, span(1, 3))
	if n := b.Stats().StoreErrors; n != 1 {
		t.Fatalf("StoreErrors = %d, want 1; log:\n%s", n, logs)
	}
	clk.Advance(time.Minute) // past the breaker's backoff: the store is tried again
	if _, err := b.Call(ctx, span(1, 3)); err != nil {
		t.Fatal(err)
	}
	if r.ncalls() != 2 || !slices.Equal(r.calls[1], []int{2}) {
		t.Fatalf("calls = %v; want only 2 (not stored) computed again", r.calls)
	}
	// FailOnStoreError fails the keys the store failed.
	if _, err := b.Call(ctx, span(1, 3), cachier.FailOnStoreError(true)); !errors.Is(err, cachier.ErrStore) {
		t.Fatalf("with FailOnStoreError, err = %v, want ErrStore", err)
	}
}

// Overlapping batches in one process join each other's single flights: each key is
// computed once, and a single CallOne joins a batch's flight too.
func TestBatchOverlappingInProcessJoinFlights(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		ctx := context.Background()
		r := &batchRecorder{
			gate:  make(chan struct{}),
			gated: func(args []int) bool { return slices.Contains(args, 1) },
			began: make(chan []int, 4),
		}
		b := mustBatch(t, r, cachier.WithStore(newStore(t)))
		first := make(chan map[int]string)
		go func() {
			m, err := b.Call(ctx, []int{1, 2, 3})
			if err != nil {
				t.Error(err)
			}
			first <- m
		}()
		<-r.began // the first batch computes 1 2 3 and holds their flights
		second := make(chan map[int]string)
		go func() {
			m, err := b.Call(ctx, []int{2, 3, 4})
			if err != nil {
				t.Error(err)
			}
			second <- m
		}()
		if got := <-r.began; !slices.Equal(got, []int{4}) {
			t.Fatalf("second batch computed %v, want only 4", got)
		}
		one := make(chan string)
		go func() {
			v, err := b.CallOne(ctx, 3)
			if err != nil {
				t.Error(err)
			}
			one <- v
		}()
		close(r.gate)
		wantResults(t, <-first, []int{1, 2, 3})
		wantResults(t, <-second, []int{2, 3, 4})
		if v := <-one; v != "v3" {
			t.Fatalf("CallOne(3) = %q", v)
		}
		if !slices.Equal(r.computed(), span(1, 4)) {
			t.Fatalf("computed %v, want each of 1..4 once", r.computed())
		}
	})
}

// Callers whose contexts can end run the batch function on a goroutine of its own
// rather than their own: overlapping batches still join each other's flights on the
// memory store, and a caller that leaves on its context while it waits for another
// batch's keys returns ctx.Err() at once, while the key it computed is still stored.
func TestBatchCancellableCallersJoinFlightsAndLeave(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := memstore.New(nil)
	r := &batchRecorder{
		gate:  make(chan struct{}),
		gated: func(args []int) bool { return slices.Contains(args, 1) },
		began: make(chan []int, 4),
	}
	b := mustBatch(t, r, cachier.WithStore(st), cachier.Name(t.Name()))
	first := make(chan map[int]string, 1)
	go func() {
		m, err := b.Call(ctx, []int{1, 2, 3})
		if err != nil {
			t.Error(err)
		}
		first <- m
	}()
	<-r.began // the first batch computes 1 2 3 and holds their flights
	leaving, leave := context.WithCancel(ctx)
	second := make(chan error, 1)
	go func() {
		_, err := b.Call(leaving, []int{2, 3, 4})
		second <- err
	}()
	// Its flights are started or joined before its computation begins.
	if got := <-r.began; !slices.Equal(got, []int{4}) {
		t.Fatalf("second batch computed %v, want only 4", got)
	}
	leave()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the second batch, its context cancelled while it waited: %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute): // a hang guard, not a synchronisation
		t.Fatal("the second batch did not leave on its context within a minute")
	}
	close(r.gate)
	wantResults(t, <-first, []int{1, 2, 3})
	if err := b.Close(ctx); err != nil { // waits for the second batch's computation to store 4
		t.Fatal(err)
	}
	if !slices.Equal(r.computed(), span(1, 4)) {
		t.Fatalf("computed %v, want each of 1..4 once", r.computed())
	}
	other := mustBatch(t, &batchRecorder{}, cachier.WithStore(st), cachier.Name(t.Name()))
	if _, err := other.Call(ctx, span(1, 4)); err != nil {
		t.Fatal(err)
	}
	if st := other.Stats(); st.Hits != 4 {
		t.Fatalf("%d of 4 results stored, want all, 4 too though its caller left", st.Hits)
	}
}

// Two batches that share a store but not a process (two Batch values, each with its
// own single flights), with their arguments in opposite orders, finish, and compute
// each key once between them.
func TestBatchReversedOverlapDoesNotDeadlock(t *testing.T) {
	ctx := context.Background()
	st := newFileStore(t)
	for round := range 20 {
		r := &batchRecorder{}
		b1 := mustBatch(t, r, cachier.WithStore(st), cachier.Version(strconv.Itoa(round)))
		b2 := mustBatch(t, r, cachier.WithStore(st), cachier.Version(strconv.Itoa(round)))
		fwd := span(1, 30)
		rev := slices.Clone(fwd)
		slices.Reverse(rev)
		var wg sync.WaitGroup
		for _, c := range []struct {
			b    *cachier.Batch[int, string]
			args []int
		}{{b1, fwd}, {b2, rev}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := c.b.Call(ctx, c.args)
				if err != nil {
					t.Error(err)
					return
				}
				wantResults(t, got, fwd)
			}()
		}
		wg.Wait()
		if !slices.Equal(r.computed(), fwd) {
			t.Fatalf("round %d computed %v, want each of 1..30 once", round, r.computed())
		}
	}
}

// The Verbose trace says, per batch, how many keys were hits, waited for or
// computed.
func TestBatchVerboseTraceCountsKeys(t *testing.T) {
	ctx := context.Background()
	logger, buf := testLogger()
	r := &batchRecorder{absent: func(a int) bool { return a == 5 }}
	b := mustBatch(t, r, cachier.WithStore(newFileStore(t)), cachier.WithLogger(logger))
	if _, err := b.Call(ctx, span(1, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Call(ctx, span(1, 5), cachier.Verbose()); err != nil {
		t.Fatal(err)
	}
	line := ""
	for l := range strings.Lines(buf.String()) {
		if strings.Contains(l, `msg="cachier: batch"`) {
			line = l
		}
	}
	for _, want := range []string{"keys=5", "hits=3", "waited=0", "computed=2", "not_found=1"} {
		if !strings.Contains(line, want) {
			t.Fatalf("trace %q lacks %s", line, want)
		}
	}
}

// Stale entries served with NextTime are refreshed together: within a call, and
// across calls inside the RefreshCoalesce window.
func TestBatchRefreshCoalescing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		opts    []cachier.Option
		advance bool
	}{
		{name: "per call"},
		{name: "window", opts: []cachier.Option{cachier.RefreshCoalesce(10*time.Second, 0)}, advance: true},
		{name: "full batch", opts: []cachier.Option{cachier.RefreshCoalesce(10*time.Second, 4)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
				clk := clock.NewFake(time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC)) // later than real time: see newClock
				r := &batchRecorder{}
				b := mustBatch(t, r, append(tc.opts, cachier.WithStore(newStore(t)), cachier.WithClock(clk),
					cachier.StaleAfter(time.Minute), cachier.NextTime(true))...)
				if _, err := b.Call(ctx, span(1, 4)); err != nil {
					t.Fatal(err)
				}
				clk.Advance(2 * time.Minute)
				r.began = make(chan []int, 2)
				var timers int
				if tc.name == "per call" {
					got, err := b.Call(ctx, span(1, 4))
					if err != nil {
						t.Fatal(err)
					}
					wantResults(t, got, span(1, 4)) // stale, at once
				} else {
					timers = clk.Timers()
					for _, args := range [][]int{{1, 2}, {2, 3}, {4}} {
						got, err := b.Call(ctx, args)
						if err != nil {
							t.Fatal(err)
						}
						wantResults(t, got, args)
					}
				}
				if tc.advance {
					if err := clk.BlockUntil(ctx, timers+1); err != nil {
						t.Fatal(err)
					}
					select {
					case got := <-r.began:
						t.Fatalf("refreshed %v before the window closed", got)
					default:
					}
					clk.Advance(10 * time.Second)
				}
				if got := <-r.began; !sameSet(got, span(1, 4)) {
					t.Fatalf("refresh computed %v, want 1..4 in one call", got)
				}
				awaitCond(t, func() bool { return b.Stats().Refreshes == 4 })
				if st := b.Stats(); st.StaleHits != 4 && tc.name == "per call" {
					t.Fatalf("StaleHits = %d, want 4", st.StaleHits)
				}
			})
		})
	}
}

// awaitCond waits until cond holds, yielding between checks; the test's own timeout
// bounds it.
func awaitCond(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatal("gave up waiting")
		default:
		}
		runtime.Gosched()
	}
}

// A panic in the batch function reaches the caller that ran it, and the keys' flights
// and leases are released: the next call computes.
func TestBatchPanicReachesCallerAndReleases(t *testing.T) {
	ctx := context.Background()
	var panicking bool
	b, err := cachier.WrapBatch(func(_ context.Context, args []int) (map[int]string, error) {
		if panicking {
			kaboom()
		}
		return map[int]string{args[0]: "ok"}, nil
	}, cachier.Name("batch-panic"), cachier.WithStore(newFileStore(t)))
	if err != nil {
		t.Fatal(err)
	}
	panicking = true
	func() {
		defer func() {
			r := recover()
			if pe, ok := r.(*cachier.PanicError); !ok || pe.Value != "kaboom" || !strings.Contains(string(pe.Stack), "cachier_test.kaboom(") {
				t.Fatalf("recovered %v, want the function's panic with its stack", r)
			}
		}()
		_, _ = b.Call(ctx, []int{1})
	}()
	panicking = false
	if v, err := b.CallOne(ctx, 1); err != nil || v != "ok" {
		t.Fatalf("after the panic, CallOne = %q, %v", v, err)
	}
}

// Bad input gets a clear error, never a panic.
func TestBatchBadInput(t *testing.T) {
	if _, err := cachier.WrapBatch[int, string](nil); !errors.Is(err, cachier.ErrOption) {
		t.Fatalf("nil function: %v", err)
	}
	r := &batchRecorder{}
	for _, o := range []cachier.Option{cachier.CacheMissing(0), cachier.RefreshCoalesce(0, 1), cachier.RefreshCoalesce(time.Second, -1)} {
		if _, err := cachier.WrapBatch(r.fn, cachier.Name("x"), o); !errors.Is(err, cachier.ErrOption) {
			t.Fatalf("%v: err = %v, want ErrOption", o, err)
		}
	}
	_, err := cachier.Wrap(singleLookup, cachier.CacheMissing(time.Second))
	if !errors.Is(err, cachier.ErrOption) || !strings.Contains(err.Error(), "WrapBatch") {
		t.Fatalf("CacheMissing in Wrap: err = %v, want ErrOption naming WrapBatch", err)
	}
	b := mustBatch(t, r, cachier.WithStore(newFileStore(t)))
	if _, err := b.Call(context.Background(), []int{1}, cachier.CacheMissing(time.Second)); !errors.Is(err, cachier.ErrOption) {
		t.Fatalf("CacheMissing in Call: err = %v", err)
	}
	if _, err := cachier.WrapBatch(func(context.Context, []int) (map[int]string, error) { return nil, nil }); !errors.Is(err, cachier.ErrUnnamed) {
		t.Fatalf("anonymous function without Name: %v", err)
	}
}

// SkipCache and Refresh: one call of the function for all the arguments.
func TestBatchSkipAndRefresh(t *testing.T) {
	ctx := context.Background()
	r := &batchRecorder{}
	b := mustBatch(t, r, cachier.WithStore(newFileStore(t)))
	if _, err := b.Call(ctx, span(1, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Refresh(ctx, span(1, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Call(ctx, span(1, 3), cachier.SkipCache()); err != nil {
		t.Fatal(err)
	}
	if r.ncalls() != 3 || !sameSet(r.calls[1], span(1, 3)) || !sameSet(r.calls[2], span(1, 3)) {
		t.Fatalf("calls = %v; want Refresh and SkipCache to compute 1..3 in one call each", r.calls)
	}
	if st := b.Stats(); st.SkippedCalls != 3 {
		t.Fatalf("SkippedCalls = %d, want 3 (per key)", st.SkippedCalls)
	}
}

// RefreshAhead: fresh hits near their stale limit are refreshed in one background
// call; a refresh that fails backs off per key instead of running on every call.
func TestBatchRefreshAheadAndBackoff(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r := &batchRecorder{}
	b := mustBatch(t, r, cachier.WithStore(newFileStore(t)), cachier.WithClock(clk),
		cachier.StaleAfter(time.Minute), cachier.NextTime(true), cachier.RefreshAhead(30*time.Second))
	if _, err := b.Call(ctx, span(1, 4)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute - time.Nanosecond) // still fresh, past every refresh point
	r.began = make(chan []int, 4)
	got, err := b.Call(ctx, span(1, 4))
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, got, span(1, 4))
	if args := <-r.began; !sameSet(args, span(1, 4)) {
		t.Fatalf("refresh ahead computed %v, want 1..4 in one call", args)
	}
	awaitCond(t, func() bool { return b.Stats().Refreshes == 4 })
	if st := b.Stats(); st.Hits != 4 || st.StaleHits != 0 {
		t.Fatalf("hits=%d stale=%d, want 4 fresh hits", st.Hits, st.StaleHits)
	}

	// Stale now, and the upstream fails: one failed refresh, then backoff.
	clk.Advance(2 * time.Minute)
	r.mu.Lock()
	r.fail = errors.New("upstream down")
	r.mu.Unlock()
	if _, err := b.Call(ctx, span(1, 4)); err != nil {
		t.Fatal(err)
	}
	<-r.began
	awaitCond(t, func() bool { return b.Stats().RefreshErrors == 4 })
	if _, err := b.Call(ctx, span(1, 4)); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.RefreshesBackedOff != 4 || r.ncalls() != 3 {
		t.Fatalf("after a failed refresh: backed off %d, calls %d; want 4 and no new call", st.RefreshesBackedOff, r.ncalls())
	}
}

// An Invalidate while a batch computes leaves none of its results stored: they are
// returned, and the next call computes them again. Refresh joins no computation
// already under way.
func TestBatchInvalidateDuringComputationAndRefresh(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		ctx := context.Background()
		r := &batchRecorder{gate: make(chan struct{}), began: make(chan []int, 4)} // fn sends began before returning
		b := mustBatch(t, r, cachier.WithStore(newStore(t)))
		done := make(chan map[int]string)
		go func() {
			m, err := b.Call(ctx, []int{1, 2})
			if err != nil {
				t.Error(err)
			}
			done <- m
		}()
		<-r.began
		if err := b.Invalidate(ctx, 1); err != nil {
			t.Fatal(err)
		}
		close(r.gate)
		wantResults(t, <-done, []int{1, 2})
		r.gate = nil
		if _, err := b.Call(ctx, []int{1, 2}); err != nil {
			t.Fatal(err)
		}
		if r.ncalls() != 2 || !sameSet(r.calls[1], []int{1, 2}) {
			t.Fatalf("calls = %v; want 1 and 2 computed again after the invalidation", r.calls)
		}
		if _, err := b.Refresh(ctx, []int{1, 2}); err != nil {
			t.Fatal(err)
		}
		if r.ncalls() != 3 {
			t.Fatalf("calls = %v; want Refresh to compute", r.calls)
		}
	})
}

// windowStore is a file store on which the first write of an entry of namespace ns
// waits for the test, and the delete of an entry of ns that follows it waits until
// some caller has read an entry of ns after the write: the window in which a
// computation that began before an invalidation has written its result and not yet
// deleted it again.
type windowStore struct {
	*filestore.Store
	ns       string
	setOnce  sync.Once
	setting  chan struct{} // closed when the write begins
	proceed  chan struct{} // closed by the test to let it go on
	written  atomic.Bool
	readOnce sync.Once
	read     chan struct{} // closed at the first read of ns after the write
}

func (w *windowStore) Set(ctx context.Context, k store.Key, e store.Entry) error {
	if k.Namespace != w.ns {
		return w.Store.Set(ctx, k, e)
	}
	w.setOnce.Do(func() {
		close(w.setting)
		<-w.proceed
	})
	err := w.Store.Set(ctx, k, e)
	w.written.Store(true)
	return err
}

func (w *windowStore) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	e, err := w.Store.Get(ctx, k)
	if k.Namespace == w.ns && w.written.Load() {
		w.readOnce.Do(func() { close(w.read) })
	}
	return e, err
}

// GetMany, GetManyInto and SetMany go key by key through Get and Set, so that the
// file store's own batched reads and writes do not pass the window by.
func (w *windowStore) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
	return es, errs, w.GetManyInto(ctx, ks, es, errs)
}

func (w *windowStore) GetManyInto(ctx context.Context, ks []store.Key, es []store.Entry, errs []error) error {
	for i, k := range ks {
		es[i], errs[i] = w.Get(ctx, k)
	}
	return nil
}

func (w *windowStore) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	errs := make([]error, len(ks))
	for i, k := range ks {
		errs[i] = w.Set(ctx, k, es[i])
	}
	return errs, nil
}

func (w *windowStore) Delete(ctx context.Context, k store.Key) error {
	if k.Namespace == w.ns && w.written.Load() {
		select {
		case <-w.read:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return w.Store.Delete(ctx, k)
}

// A batch that waits for another process's computation (here another Batch, which
// shares no lock with it) and began after an Invalidate never takes the result of a
// computation that began before it: that one read the old data. The other process
// checked the epoch before the Invalidate and writes after it; the waiter reads the
// entry before the writer's last check deletes it again, and must refuse it because
// it was computed under the old invalidation epoch.
func TestBatchWaiterRefusesAResultFromBeforeAnInvalidate(t *testing.T) {
	const name = "batch/waiter-epoch"
	ws := &windowStore{Store: newFileDriver(t), ns: name, setting: make(chan struct{}), proceed: make(chan struct{}), read: make(chan struct{})}
	st := store.Adapt(ws)
	var data atomic.Int64
	data.Store(1)
	fn := func(_ context.Context, args []int) (map[int]int64, error) {
		m := map[int]int64{}
		for _, a := range args {
			m[a] = data.Load()
		}
		return m, nil
	}
	a, err := cachier.WrapBatch(fn, cachier.Name(name), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cachier.WrapBatch(fn, cachier.Name(name), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gotA := make(chan map[int]int64, 1)
	go func() { m, _ := a.Call(ctx, []int{7}); gotA <- m }()
	<-ws.setting // a computed 1 under the lease, checked the epoch, and is writing
	data.Store(2)
	if err := c.Invalidate(ctx, 7); err != nil {
		t.Fatal(err)
	}
	gotC := make(chan map[int]int64, 1)
	go func() {
		m, err := c.Call(ctx, []int{7})
		if err != nil {
			t.Error(err)
		}
		gotC <- m
	}()
	waitFor(t, "the batch after Invalidate to wait for the lease", func() bool { return c.Stats().Waits == 1 })
	close(ws.proceed)
	if m := <-gotA; m[7] != 1 {
		t.Fatalf("the batch before Invalidate got %v, want 1", m)
	}
	if m := <-gotC; m[7] != 2 {
		t.Fatalf("the batch after Invalidate got %v from the computation that began before it, want 2", m)
	}
	for _, b := range []*cachier.Batch[int, int64]{a, c} {
		if m, err := b.Call(ctx, []int{7}); m[7] != 2 || err != nil {
			t.Fatalf("after Invalidate: %v, %v; the old result was kept", m, err)
		}
	}
}

// Close waits for a batch computing in this process to store its results; after it,
// calls run the function directly and store nothing, and Invalidate returns ErrClosed.
func TestBatchClose(t *testing.T) {
	st := newFileStore(t)
	r := &batchRecorder{gate: make(chan struct{}), began: make(chan []int, 4)}
	b := mustBatch(t, r, cachier.WithStore(st), cachier.Name("batch/close"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	called := make(chan error, 1)
	go func() { _, err := b.Call(ctx, []int{1, 2}); called <- err }()
	<-r.began
	// A Close that gives up at once reports the computation it did not wait for.
	// (Tried a few times: without a computation to wait for, Close picks between
	// "idle" and "ctx done" at random.)
	gone, giveUp := context.WithCancel(ctx)
	giveUp()
	for range 8 {
		if err := b.Close(gone); !errors.Is(err, context.Canceled) {
			t.Fatalf("Close during a computation, with a done context: %v, want it to report giving up", err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close(ctx) }()
	close(r.gate)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := <-called; err != nil {
		t.Fatal(err)
	}
	// What the batch computed before Close was stored by the time Close returned.
	other := mustBatch(t, &batchRecorder{}, cachier.WithStore(st), cachier.Name("batch/close"))
	if _, err := other.Call(ctx, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	if st := other.Stats(); st.Hits != 2 {
		t.Fatalf("after Close: %d of 2 results stored", st.Hits)
	}
	r.began, r.gate = nil, nil
	m, err := b.Call(ctx, []int{3})
	if err != nil || m[3] != "v3" {
		t.Fatalf("after Close: %v, %v", m, err)
	}
	k, _ := b.Key(3)
	if _, err := st.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a call after Close touched the store: %v", err)
	}
	if err := b.Invalidate(ctx, 1); !errors.Is(err, cachier.ErrClosed) {
		t.Fatalf("Invalidate after Close: %v, want ErrClosed", err)
	}
}

// On the memory store a batch's cached arguments are answered by the typed first
// level, counted per argument: a repeated argument is one hit, as it is one key.
func TestBatchFirstLevelCountsRepeatedArgumentsOnce(t *testing.T) {
	ctx := context.Background()
	r := &batchRecorder{}
	b := mustBatch(t, r, cachier.WithStore(memstore.New(nil)), cachier.Name(t.Name()))
	if _, err := b.Call(ctx, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Call(ctx, []int{1, 2}); err != nil { // read from the store: fills the first level
		t.Fatal(err)
	}
	before := b.Stats().Hits
	m, err := b.Call(ctx, []int{1, 1, 2, 2, 1, 3, 3})
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, m, []int{1, 2, 3})
	if st := b.Stats(); st.Hits-before != 2 || st.Misses != 3 || !slices.Equal(r.computed(), []int{1, 2, 3}) {
		t.Fatalf("hits %d, misses %d (computed %v); want 2 more hits, 3 computed once", st.Hits-before, st.Misses, r.computed())
	}
}

// lookupGate is a memory store whose first read of a key (GetTicketed or GetLive, the
// reads of a lookup on it) waits, after reading, until the test lets it go.
type lookupGate struct {
	*memstore.Store
	first   atomic.Bool   // taken by the first read (a sync.Once would block the others)
	reading chan struct{} // closed when the first read has read
	proceed chan struct{} // closed by the test
}

func (g *lookupGate) hold() {
	if g.first.CompareAndSwap(false, true) {
		close(g.reading)
		<-g.proceed
	}
}

func (g *lookupGate) GetTicketed(ctx context.Context, k store.Key) (store.Entry, any, *tier.Ticket, error) {
	e, v, tk, err := g.Store.GetTicketed(ctx, k)
	g.hold()
	return e, v, tk, err
}

func (g *lookupGate) GetLive(ctx context.Context, k store.Key) (store.Entry, any, error) {
	e, v, err := g.Store.GetLive(ctx, k)
	g.hold()
	return e, v, err
}

// On a process-local store, a result that another call of the batch stored between
// this batch's lookup (a miss) and the start of its flight answers the batch: it is
// not computed a second time (a single call looks again the same way).
func TestBatchOnMemoryTakesAResultStoredAfterItsLookup(t *testing.T) {
	g := &lookupGate{Store: memstore.New(nil), reading: make(chan struct{}), proceed: make(chan struct{})}
	r := &batchRecorder{}
	b := mustBatch(t, r, cachier.WithStore(g), cachier.Name(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := make(chan map[int]string, 1)
	go func() {
		m, err := b.Call(ctx, []int{7})
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	<-g.reading // the batch's lookup found nothing
	if _, err := b.CallOne(ctx, 7); err != nil {
		t.Fatal(err)
	}
	close(g.proceed)
	wantResults(t, <-got, []int{7})
	if n := r.ncalls(); n != 1 {
		t.Fatalf("the function ran %d times (%v): the batch computed again what a call stored after its lookup", n, r.calls)
	}
}
