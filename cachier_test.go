package cachier_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
	"github.com/cachier-go/cachier/store/memstore"
)

type storeCloser = store.Store

type Query struct {
	User  string
	Year  int
	Flags []string
}

type Report struct {
	Title string
	Rows  []int
}

var reportCalls atomic.Int64

func fetchReport(_ context.Context, q Query) (Report, error) {
	reportCalls.Add(1)
	return Report{Title: fmt.Sprintf("%s/%d", q.User, q.Year), Rows: []int{q.Year, len(q.Flags)}}, nil
}

func otherReport(ctx context.Context, q Query) (Report, error) { return fetchReport(ctx, q) }

func TestEqualArgumentsShareAnEntry(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		st := newStore(t)
		ctx := context.Background()
		f, err := cachier.Wrap(fetchReport, cachier.WithStore(st))
		if err != nil {
			t.Fatal(err)
		}
		before := f.Stats().Computations
		q := Query{User: "ann", Year: 2026, Flags: []string{"a"}}
		r1, err := f.Call(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := f.Call(ctx, Query{User: "ann", Year: 2026, Flags: []string{"a"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Stats().Computations - before; got != 1 {
			t.Fatalf("equal arguments computed %d times, want 1", got)
		}
		if r1.Title != r2.Title || r2.Title != "ann/2026" {
			t.Fatalf("got %+v and %+v", r1, r2)
		}
		// Different arguments never share.
		for _, q2 := range []Query{{User: "bob", Year: 2026, Flags: []string{"a"}}, {User: "ann", Year: 2025, Flags: []string{"a"}}, {User: "ann", Year: 2026}} {
			r, err := f.Call(ctx, q2)
			if err != nil || r.Title != fmt.Sprintf("%s/%d", q2.User, q2.Year) || r.Rows[1] != len(q2.Flags) {
				t.Fatalf("Call(%+v) = %+v, %v", q2, r, err)
			}
		}
		if got := f.Stats().Computations - before; got != 4 {
			t.Fatalf("4 distinct arguments computed %d times", got)
		}
		// Different functions and versions never share.
		g, _ := cachier.Wrap(otherReport, cachier.WithStore(st))
		v2, _ := cachier.Wrap(fetchReport, cachier.WithStore(st), cachier.Version("2"))
		for _, h := range []*cachier.Func[Query, Report]{g, v2} {
			if h.Namespace() == f.Namespace() {
				t.Fatalf("namespaces collide: %q", h.Namespace())
			}
			if _, err := h.Call(ctx, q); err != nil {
				t.Fatal(err)
			}
			if h.Stats().Computations != 1 {
				t.Fatalf("%s served another function's entry", h.Namespace())
			}
		}
	})
}

func TestStaleAfter(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		clock := newClock()
		var n atomic.Int64
		fn := func(_ context.Context, x int) (int, error) { return x*100 + int(n.Add(1)), nil }
		f, err := cachier.Wrap(fn, cachier.Name("stale"), cachier.WithStore(newStore(t)), cachier.WithClock(clock), cachier.StaleAfter(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		call := func(opts ...cachier.Option) int {
			t.Helper()
			v, err := f.Call(ctx, 1, opts...)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if v := call(); v != 101 {
			t.Fatalf("first call = %d", v)
		}
		clock.Advance(59 * time.Minute)
		if v := call(); v != 101 {
			t.Fatalf("fresh value not served: %d", v)
		}
		if v := call(cachier.MaxAge(30 * time.Minute)); v != 102 {
			t.Fatalf("MaxAge below the age did not recompute: %d", v)
		}
		if v := call(cachier.MaxAge(-1)); v != 103 {
			t.Fatalf("negative MaxAge did not recompute: %d", v)
		}
		if v := call(cachier.MaxAge(2 * time.Hour)); v != 103 {
			t.Fatalf("MaxAge above StaleAfter must not extend it: %d", v)
		}
		clock.Advance(time.Hour)
		if v := call(); v != 104 {
			t.Fatalf("stale value not recomputed: %d", v)
		}
		st := f.Stats()
		if st.Hits != 2 || st.Computations != 4 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestNextTimeServesStaleAndRefreshesOnce(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		clock := newClock()
		var calls atomic.Int64
		release := make(chan struct{})
		fn := func(_ context.Context, x int) (int, error) {
			if calls.Add(1) > 1 {
				<-release // hold the refresh open while stale hits pile up
			}
			return int(calls.Load()), nil
		}
		f, err := cachier.Wrap(fn, cachier.Name("nexttime"), cachier.WithStore(newStore(t)), cachier.WithClock(clock),
			cachier.StaleAfter(time.Minute), cachier.NextTime(true))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if v, _ := f.Call(ctx, 7); v != 1 {
			t.Fatalf("first = %d", v)
		}
		clock.Advance(2 * time.Minute)
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if v, err := f.Call(ctx, 7); v != 1 || err != nil {
					t.Errorf("stale hit = %d, %v; want the stale 1", v, err)
				}
			}()
		}
		wg.Wait()
		close(release)
		waitFor(t, "the refresh to land", func() bool { return f.Stats().Refreshes == 1 })
		if v, _ := f.Call(ctx, 7); v != 2 {
			t.Fatalf("after refresh = %d, want 2", v)
		}
		if got := calls.Load(); got != 2 {
			t.Fatalf("fn ran %d times, want 2 (one refresh)", got)
		}
		if s := f.Stats(); s.StaleHits != 32 {
			t.Fatalf("stale hits = %d", s.StaleHits)
		}
	})
}

func TestFailedRefreshKeepsStaleValue(t *testing.T) {
	clock := newClock()
	var fail atomic.Bool
	fn := func(_ context.Context, x int) (string, error) {
		if fail.Load() {
			return "", errors.New("upstream down")
		}
		return "good", nil
	}
	log, logs := testLogger()
	f, _ := cachier.Wrap(fn, cachier.Name("refreshfail"), cachier.WithStore(memstore.New(nil)), cachier.WithClock(clock),
		cachier.StaleAfter(time.Minute), cachier.NextTime(true), cachier.WithLogger(log))
	ctx := context.Background()
	f.Call(ctx, 1)
	fail.Store(true)
	clock.Advance(time.Hour)
	if v, err := f.Call(ctx, 1); v != "good" || err != nil {
		t.Fatalf("stale call = %q, %v", v, err)
	}
	waitFor(t, "the refresh to fail", func() bool { return f.Stats().RefreshErrors == 1 })
	if v, err := f.Call(ctx, 1); v != "good" || err != nil {
		t.Fatalf("after failed refresh = %q, %v", v, err)
	}
	if !strings.Contains(logs.String(), "upstream down") {
		t.Fatalf("refresh failure not logged: %s", logs)
	}
}

func TestErrorsAreReturnedNotCached(t *testing.T) {
	var n atomic.Int64
	boom := errors.New("boom")
	fn := func(_ context.Context, x int) (int, error) {
		if n.Add(1) == 1 {
			return 0, boom
		}
		return 42, nil
	}
	f, _ := cachier.Wrap(fn, cachier.Name("errs"), cachier.WithStore(memstore.New(nil)))
	if _, err := f.Call(context.Background(), 1); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if v, err := f.Call(context.Background(), 1); v != 42 || err != nil {
		t.Fatalf("after error: %d, %v; the error was cached", v, err)
	}
}

// kaboom panics; the stack of a re-panic must name it.
func kaboom() { panic("kaboom") }

func TestPanicReachesCallerAndWaitersGetError(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		started := make(chan struct{})
		release := make(chan struct{})
		var n atomic.Int64
		fn := func(_ context.Context, x int) (int, error) {
			if n.Add(1) == 1 {
				close(started)
				<-release
				kaboom()
			}
			return 5, nil
		}
		st := newStore(t)
		f, _ := cachier.Wrap(fn, cachier.Name("panics"), cachier.WithStore(st))
		ctx := context.Background()
		leaderDone := make(chan any)
		go func() {
			defer func() { leaderDone <- recover() }()
			f.Call(ctx, 1)
		}()
		<-started
		waiterErr := make(chan error)
		go func() { _, err := f.Call(ctx, 1); waiterErr <- err }()
		waitFor(t, "the waiter to join", func() bool { return f.Stats().Misses == 2 })
		close(release)
		r := <-leaderDone
		pe, ok := r.(*cachier.PanicError)
		if !ok || pe.Value != "kaboom" {
			t.Fatalf("leader recovered %#v, want a *PanicError with the panic", r)
		}
		// The stack is the one of the panic, in fn, not of the re-panic.
		if !strings.Contains(string(pe.Stack), "cachier_test.kaboom(") {
			t.Fatalf("the re-panic lost the stack of the panic:\n%s", pe.Stack)
		}
		err := <-waiterErr
		if !errors.Is(err, cachier.ErrPanicked) || !errors.As(err, &pe) || pe.Value != "kaboom" {
			t.Fatalf("waiter got %v, want ErrPanicked with the panic", err)
		}
		// The lease was released: the next call computes at once.
		if v, err := f.Call(ctx, 1); v != 5 || err != nil {
			t.Fatalf("after panic: %d, %v", v, err)
		}
		var leases int
		for _, err := range st.Leases(ctx, f.Namespace()) {
			if err != nil {
				t.Fatal(err)
			}
			leases++
		}
		if leases != 0 {
			t.Fatalf("%d leases left after the panic", leases)
		}
	})
}

func TestNilResults(t *testing.T) {
	var n atomic.Int64
	fn := func(_ context.Context, x int) (*Report, error) { n.Add(1); return nil, nil }
	f, _ := cachier.Wrap(fn, cachier.Name("nils"), cachier.WithStore(memstore.New(nil)))
	ctx := context.Background()
	f.Call(ctx, 1)
	f.Call(ctx, 1)
	if n.Load() != 2 || f.Stats().NilsNotCached != 2 {
		t.Fatalf("nil was cached: %d calls, %+v", n.Load(), f.Stats())
	}
	g, _ := cachier.Wrap(fn, cachier.Name("nils-allowed"), cachier.WithStore(newFileStore(t)), cachier.AllowNil(true))
	n.Store(0)
	for range 3 {
		if r, err := g.Call(ctx, 1); r != nil || err != nil {
			t.Fatalf("got %v, %v", r, err)
		}
	}
	if n.Load() != 1 {
		t.Fatalf("AllowNil: fn ran %d times", n.Load())
	}
}

func TestEntrySizeLimit(t *testing.T) {
	var n atomic.Int64
	fn := func(_ context.Context, size int) ([]byte, error) { n.Add(1); return make([]byte, size), nil }
	f, _ := cachier.Wrap(fn, cachier.Name("sizes"), cachier.WithStore(newFileStore(t)), cachier.EntrySizeLimit(100))
	ctx := context.Background()
	for range 2 {
		if b, err := f.Call(ctx, 1000); len(b) != 1000 || err != nil {
			t.Fatalf("big result not returned: %d, %v", len(b), err)
		}
		f.Call(ctx, 10)
	}
	if n.Load() != 3 || f.Stats().SizeRejections != 2 {
		t.Fatalf("calls %d, stats %+v", n.Load(), f.Stats())
	}
}

func TestWaiterLeavesComputationContinues(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int64
	fn := func(ctx context.Context, x int) (int, error) {
		n.Add(1)
		<-release
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 9, nil
	}
	f, _ := cachier.Wrap(fn, cachier.Name("leaver"), cachier.WithStore(memstore.New(nil)))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { _, err := f.Call(ctx, 1); errc <- err }()
	waitFor(t, "fn to start", func() bool { return n.Load() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller got %v, want context.Canceled", err)
	}
	close(release)
	waitFor(t, "the result to be stored", func() bool {
		v, err := f.Call(context.Background(), 1)
		return v == 9 && err == nil
	})
	if n.Load() != 1 {
		t.Fatalf("fn ran %d times; the cancelled caller's computation was not kept", n.Load())
	}
}

// cleanupCounter counts the cleanups (DeleteBefore calls) that reach the store.
type cleanupCounter struct {
	store.Store
	n atomic.Int64
}

func (c *cleanupCounter) DeleteBefore(ctx context.Context, ns string, t time.Time) (int, error) {
	c.n.Add(1)
	return c.Store.DeleteBefore(ctx, ns, t)
}

// TestCleanupStaleRunsOncePerInterval: of four calls spread over an interval and a
// bit, exactly two clean up (the first, and the first after the interval), and the
// second deletes every stale entry. Close waits for the cleanups, so the count is exact.
func TestCleanupStaleRunsOncePerInterval(t *testing.T) {
	clock := newClock()
	st := &cleanupCounter{Store: store.Adapt(memstore.New(nil))}
	fn := func(_ context.Context, x int) (int, error) { return x, nil }
	f, _ := cachier.Wrap(fn, cachier.Name("cleanup"), cachier.WithStore(st), cachier.WithClock(clock),
		cachier.StaleAfter(time.Minute), cachier.CleanupStale(time.Hour))
	ctx := context.Background()
	f.Call(ctx, 1) // first call: cleanup of an empty namespace
	f.Call(ctx, 2)
	clock.Advance(2 * time.Minute) // 1 and 2 are stale now
	f.Call(ctx, 3)                 // within the interval: no cleanup
	clock.Advance(time.Hour)
	f.Call(ctx, 4) // after the interval: cleanup deletes 1, 2 and 3
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := st.n.Load(); n != 2 {
		t.Errorf("%d cleanups over 4 calls in an interval and a bit, want 2", n)
	}
	n := 0
	for _, err := range st.Entries(ctx, f.Namespace()) {
		if err == nil {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d entries after the second cleanup, want 1 (the fresh one)", n)
	}
}

func TestStoreFailureNeverFailsTheCall(t *testing.T) {
	dir := t.TempDir() + "/cache"
	st := newFileStoreAt(t, dir)
	log, logs := testLogger()
	var n atomic.Int64
	fn := func(_ context.Context, x int) (int, error) { n.Add(1); return x * 2, nil }
	f, _ := cachier.Wrap(fn, cachier.Name("broken"), cachier.WithStore(st), cachier.WithLogger(log))
	ctx := context.Background()
	f.Call(ctx, 1)
	// Replace the cache directory with a file: every store operation now fails.
	mustRemoveAll(t, dir)
	mustWriteFile(t, dir, "not a directory")
	for range 2 {
		if v, err := f.Call(ctx, 2); v != 4 || err != nil {
			t.Fatalf("call with a broken store = %d, %v", v, err)
		}
	}
	if f.Stats().StoreErrors == 0 || !strings.Contains(logs.String(), "store error") {
		t.Fatalf("store errors not counted or logged: %+v\n%s", f.Stats(), logs)
	}
	if _, err := f.Call(ctx, 3, cachier.FailOnStoreError(true)); !errors.Is(err, cachier.ErrStore) {
		t.Fatalf("FailOnStoreError: err = %v", err)
	}
}

func TestCorruptEntryIsAMiss(t *testing.T) {
	dir := t.TempDir()
	st := newFileStoreAt(t, dir)
	log, _ := testLogger()
	var n atomic.Int64
	fn := func(_ context.Context, x int) (Report, error) { n.Add(1); return Report{Title: "right"}, nil }
	f, _ := cachier.Wrap(fn, cachier.Name("corrupt"), cachier.WithStore(st), cachier.WithLogger(log))
	ctx := context.Background()
	f.Call(ctx, 1)
	corruptEveryFile(t, dir)
	r, err := f.Call(ctx, 1)
	if err != nil || r.Title != "right" || n.Load() != 2 {
		t.Fatalf("corrupt entry: %+v, %v, %d computations", r, err, n.Load())
	}
	if f.Stats().DecodeErrors != 1 {
		t.Fatalf("corruption not counted: %+v", f.Stats())
	}
}

func TestOptionsWhereTheyDoNotApply(t *testing.T) {
	f, err := cachier.Wrap(fetchReport, cachier.WithStore(memstore.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []cachier.Option{cachier.WithStore(memstore.New(nil)), cachier.WithCodec(cachier.JSON), cachier.Name("x"), cachier.WithKey(func(q Query) (string, error) { return q.User, nil })} {
		if _, err := f.Call(context.Background(), Query{}, o); !errors.Is(err, cachier.ErrOption) || !strings.Contains(err.Error(), o.String()) {
			t.Errorf("Call with %s: err = %v, want ErrOption naming it", o, err)
		}
	}
	if err := cachier.SetDefaults(cachier.Name("x")); !errors.Is(err, cachier.ErrOption) {
		t.Errorf("SetDefaults(Name): %v", err)
	}
	if _, err := f.Call(context.Background(), Query{}, cachier.Option{}); !errors.Is(err, cachier.ErrOption) {
		t.Errorf("zero Option: %v", err)
	}
	if _, err := cachier.Wrap(fetchReport, cachier.StaleAfter(-1)); !errors.Is(err, cachier.ErrOption) {
		t.Errorf("negative StaleAfter: %v", err)
	}
	if _, err := cachier.Wrap(fetchReport, cachier.WithKey(func(s string) (string, error) { return s, nil })); !errors.Is(err, cachier.ErrOption) {
		t.Errorf("WithKey of the wrong type: %v", err)
	}
}

type withUnexported struct {
	Public  int
	private int
}

type withFunc struct{ F func() }

type withAny struct{ V any }

func TestUnkeyableArgumentsRejectedAtWrap(t *testing.T) {
	for name, err := range map[string]error{
		"unexported": wrapErr(func(_ context.Context, a withUnexported) (int, error) { return 0, nil }),
		"func":       wrapErr(func(_ context.Context, a withFunc) (int, error) { return 0, nil }),
		"interface":  wrapErr(func(_ context.Context, a withAny) (int, error) { return 0, nil }),
		"chan":       wrapErr(func(_ context.Context, a chan int) (int, error) { return 0, nil }),
	} {
		if !errors.Is(err, cachier.ErrUnkeyable) {
			t.Errorf("%s: err = %v, want ErrUnkeyable", name, err)
		}
	}
	err := wrapErr(func(_ context.Context, a withUnexported) (int, error) { return 0, nil })
	if !strings.Contains(err.Error(), "private") {
		t.Errorf("error does not name the field: %v", err)
	}
	// WithKey makes any argument usable.
	if _, err := cachier.Wrap(func(_ context.Context, a withFunc) (int, error) { return 0, nil },
		cachier.Name("keyed"), cachier.WithKey(func(withFunc) (string, error) { return "k", nil })); err != nil {
		t.Errorf("WithKey: %v", err)
	}
}

func wrapErr[A any](fn func(context.Context, A) (int, error)) error {
	_, err := cachier.Wrap(fn, cachier.Name("t"), cachier.WithStore(memstore.New(nil)))
	return err
}

func TestAnonymousFunctionNeedsName(t *testing.T) {
	_, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x, nil })
	if !errors.Is(err, cachier.ErrUnnamed) {
		t.Fatalf("err = %v, want ErrUnnamed", err)
	}
}

func TestDisableAndSkip(t *testing.T) {
	var n atomic.Int64
	fn := func(_ context.Context, x int) (int, error) { return int(n.Add(1)), nil }
	st := memstore.New(nil)
	f, _ := cachier.Wrap(fn, cachier.Name("disable"), cachier.WithStore(st))
	ctx := context.Background()
	f.Call(ctx, 1)
	if v, _ := f.Call(ctx, 1, cachier.SkipCache()); v != 2 {
		t.Fatalf("SkipCache served from cache: %d", v)
	}
	cachier.Disable()
	v, _ := f.Call(ctx, 1)
	cachier.Enable()
	if v != 3 {
		t.Fatalf("Disable served from cache: %d", v)
	}
	if v, _ := f.Call(ctx, 1); v != 1 {
		t.Fatalf("after Enable: %d, want the cached 1", v)
	}
	if v, _ := f.Call(ctx, 1, cachier.Overwrite()); v != 4 {
		t.Fatalf("Overwrite: %d", v)
	}
	if v, _ := f.Call(ctx, 1); v != 4 {
		t.Fatalf("after Overwrite: %d, want the new 4", v)
	}
}

func TestSetDefaultsReadAtCallTime(t *testing.T) {
	clock := newClock()
	var n atomic.Int64
	fn := func(_ context.Context, x int) (int, error) { return int(n.Add(1)), nil }
	f, _ := cachier.Wrap(fn, cachier.Name("defaults"), cachier.WithStore(memstore.New(nil)), cachier.WithClock(clock))
	ctx := context.Background()
	f.Call(ctx, 1)
	clock.Advance(time.Hour)
	if v, _ := f.Call(ctx, 1); v != 1 {
		t.Fatalf("no StaleAfter: %d", v)
	}
	if err := cachier.SetDefaults(cachier.StaleAfter(time.Minute)); err != nil {
		t.Fatal(err)
	}
	defer cachier.SetDefaults()
	if v, _ := f.Call(ctx, 1); v != 2 {
		t.Fatalf("default StaleAfter not applied at call time: %d", v)
	}
}

func TestManagement(t *testing.T) {
	st := newFileStore(t)
	var n atomic.Int64
	fn := func(_ context.Context, x int) (int, error) { return int(n.Add(1)), nil }
	f, _ := cachier.Wrap(fn, cachier.Name("mgmt"), cachier.WithStore(st))
	ctx := context.Background()
	if err := f.Precache(ctx, 1, 100); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Call(ctx, 1); v != 100 {
		t.Fatalf("precached value not served: %d", v)
	}
	if err := f.Invalidate(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Call(ctx, 1); v != 1 {
		t.Fatalf("after Invalidate: %d", v)
	}
	if v, _ := f.Refresh(ctx, 1); v != 2 {
		t.Fatalf("Refresh: %d", v)
	}
	if err := f.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Call(ctx, 1); v != 3 {
		t.Fatalf("after Clear: %d", v)
	}
	if dir, ok := f.CacheDir(); !ok || dir == "" {
		t.Fatalf("CacheDir = %q, %v", dir, ok)
	}
	// A lease left by a dead holder is released by ClearBeingCalculated.
	k, _ := f.Key(2)
	if _, err := st.Acquire(ctx, k, store.Owner{Host: "gone", PID: 1, Token: "t"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := f.ClearBeingCalculated(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := f.Call(ctx, 2, cachier.WaitForCalcTimeout(time.Hour)); v != 4 || err != nil {
		t.Fatalf("after ClearBeingCalculated: %d, %v", v, err)
	}
}

func TestVerboseExplainsTheMiss(t *testing.T) {
	log, logs := testLogger()
	clock := newClock()
	f, _ := cachier.Wrap(fetchReport, cachier.WithStore(memstore.New(nil)), cachier.WithLogger(log), cachier.WithClock(clock), cachier.StaleAfter(time.Minute))
	ctx := context.Background()
	f.Call(ctx, Query{User: "v"}, cachier.Verbose())
	clock.Advance(time.Hour)
	f.Call(ctx, Query{User: "v"}, cachier.Verbose())
	out := logs.String()
	for _, want := range []string{"miss: no entry", "miss: stale", "age=1h0m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("verbose log lacks %q:\n%s", want, out)
		}
	}
}

func TestCodecs(t *testing.T) {
	for _, c := range []cachier.Codec{cachier.CBOR, cachier.JSON, cachier.Gob} {
		st := newFileStore(t)
		f, err := cachier.Wrap(fetchReport, cachier.WithStore(st), cachier.WithCodec(c))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		q := Query{User: "c", Year: 1}
		want, _ := f.Call(ctx, q)
		// A new Func on the same store decodes what the first stored.
		g, _ := cachier.Wrap(fetchReport, cachier.WithStore(st), cachier.WithCodec(c))
		got, err := g.Call(ctx, q)
		if err != nil || got.Title != want.Title || len(got.Rows) != 2 || g.Stats().Hits != 1 {
			t.Fatalf("%T: %+v, %v, %+v", c, got, err, g.Stats())
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A computation that outlives its lease's TTL keeps the lease by renewing it: another
// caller (here a second Func on the same store, as another process would be) waits
// for the result instead of computing too. Time is a fake clock shared by the store
// and both Funcs, moved a third of the TTL at a time, ten times: three TTLs and more.
func TestLongComputationKeepsItsLease(t *testing.T) {
	clk := newClock()
	fst, err := filestore.New(&filestore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fst.Close() })
	st := store.Adapt(fst, store.WithClock(clk)) // leases expire by the fake clock
	var n atomic.Int64
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	fn := func(_ context.Context, x int) (int, error) {
		n.Add(1)
		started <- struct{}{}
		<-release
		return 7, nil
	}
	const ttl = 300 * time.Millisecond
	opts := []cachier.Option{cachier.Name("renewed"), cachier.WithStore(st), cachier.LeaseTTL(ttl), cachier.WithClock(clk)}
	a, _ := cachier.Wrap(fn, opts...)
	b, _ := cachier.Wrap(fn, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan int, 2)
	go func() { v, _ := a.Call(ctx, 1); done <- v }()
	<-started
	go func() { v, _ := b.Call(ctx, 1); done <- v }()
	// Two timers: a's renewal and b's poll. Each step fires a's renewal, which re-arms
	// its timer only once the store has the renewed lease.
	if err := clk.BlockUntil(ctx, 2); err != nil {
		t.Fatalf("b never started waiting: %v", err)
	}
	for range 10 {
		clk.Advance(ttl / 3)
		if err := clk.BlockUntil(ctx, 2); err != nil {
			t.Fatalf("the lease was not renewed: %v", err)
		}
	}
	close(release)
	if v1, v2 := <-done, <-done; v1 != 7 || v2 != 7 {
		t.Fatalf("results %d %d", v1, v2)
	}
	if n.Load() != 1 || b.Stats().LeaseTakeovers != 0 {
		t.Fatalf("%d computations, %d takeovers: the lease was not renewed", n.Load(), b.Stats().LeaseTakeovers)
	}
}

// The breaker measures its backoff as time elapsed on the Func's clock: a wall clock
// stepped back by an hour right after a store failure must not keep the store
// bypassed for the hour.
func TestBreakerSurvivesABackwardClockStep(t *testing.T) {
	dir := t.TempDir() + "/cache"
	st := newFileStoreAt(t, dir)
	clk := newClock()
	log, _ := testLogger()
	fn := func(_ context.Context, x int) (int, error) { return x * 2, nil }
	f, _ := cachier.Wrap(fn, cachier.Name("breaker-step"), cachier.WithStore(st), cachier.WithLogger(log), cachier.WithClock(clk))
	ctx := context.Background()
	nsDir, _ := f.CacheDir()
	mustRemoveAll(t, nsDir)
	mustWriteFile(t, nsDir, "not a directory")
	f.Call(ctx, 2) // fails on the store, opens the breaker
	if f.Stats().StoreErrors == 0 {
		t.Fatal("no store error counted")
	}
	mustRemoveAll(t, nsDir)
	clk.Set(clk.Now().Add(-time.Hour))
	for range 3 {
		f.Call(ctx, 2)
	}
	if s := f.Stats(); s.StoreBypassed != 0 || s.Hits != 2 {
		t.Fatalf("after the clock stepped back the store stayed bypassed: %+v", s)
	}
}
