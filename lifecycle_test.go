package cachier_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
	"github.com/cachier-go/cachier/store/memstore"
)

var t0 = future // a fake clock later than any real one, so no store thinks an entry expired

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// faultyStore fails the operations a test tells it to, with the error it is given.
type faultyStore struct {
	store.Store
	getErr, setErr atomic.Pointer[error]
}

func (s *faultyStore) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	if err := s.getErr.Load(); err != nil {
		return store.Entry{}, *err
	}
	return s.Store.Get(ctx, k)
}

func (s *faultyStore) Set(ctx context.Context, k store.Key, e store.Entry) error {
	if err := s.setErr.Load(); err != nil {
		return *err
	}
	return s.Store.Set(ctx, k, e)
}

func (s *faultyStore) failGets(err error) { s.getErr.Store(&err) }
func (s *faultyStore) failSets(err error) { s.setErr.Store(&err) }

// refused is what a client reports when the server is down.
var refused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

// recv receives from ch, failing the test rather than hanging if nothing comes.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("%s never came", what)
		panic("unreachable")
	}
}

// blockUntil waits until the code under test armed n timers on c.
func blockUntil(t *testing.T, c *clock.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.BlockUntil(ctx, n); err != nil {
		t.Fatalf("%d timers never armed (%d are): %v", n, c.Timers(), err)
	}
}

// Finding 8: a caller in the same process as a stuck computation waits no longer than
// WaitForCalcTimeout, then computes itself, as it would behind another process.
func TestWaitForCalcTimeoutBoundsWaitersInTheSameProcess(t *testing.T) {
	clk := clock.NewFake(t0)
	stuck := make(chan struct{})
	defer close(stuck)
	started := make(chan struct{})
	var n atomic.Int64
	fn := func(ctx context.Context, x int) (int, error) {
		if n.Add(1) == 1 {
			close(started)
			<-stuck // hangs, and ignores its context
			return -1, nil
		}
		return 42, nil
	}
	f, err := cachier.Wrap(fn, cachier.Name("lifecycle/waitlimit"), cachier.WithStore(memstore.New(nil)), cachier.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	go f.Call(ctx, 1) // the leader, stuck forever
	<-started
	got := make(chan int, 1)
	go func() {
		v, err := f.Call(ctx, 1, cachier.WaitForCalcTimeout(300*time.Millisecond))
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	blockUntil(t, clk, 1) // the waiter is waiting
	clk.Advance(300 * time.Millisecond)
	if v := recv(t, "the waiter's result", got); v != 42 {
		t.Fatalf("waiter got %d, want its own computation's 42", v)
	}
	if s := f.Stats(); s.WaitTimeouts != 1 || s.Computations != 2 {
		t.Fatalf("stats %+v: want 1 wait timeout and 2 computations", s)
	}
}

// Finding 12: while the breaker is open, 64 concurrent callers of one key still
// share one run of fn.
func TestSingleFlightWhileTheStoreIsDown(t *testing.T) {
	clk := clock.NewFake(t0) // stands still: the breaker stays open
	st := &faultyStore{Store: store.Adapt(memstore.New(nil))}
	release := make(chan struct{})
	second := make(chan struct{})
	var runs atomic.Int64
	fn := func(_ context.Context, x int) (int, error) {
		if x == 7 {
			switch runs.Add(1) {
			case 1:
				<-release
			case 2:
				close(second)
			}
		}
		return x * 2, nil
	}
	// WaitForCalcTimeout arms one timer per waiter on the fake clock, which tells the
	// test when every caller has joined; it never fires.
	f, _ := cachier.Wrap(fn, cachier.Name("lifecycle/downflight"), cachier.WithStore(st), cachier.WithClock(clk),
		cachier.WaitForCalcTimeout(time.Hour), cachier.WithLogger(quietLogger()))
	ctx := context.Background()
	st.failGets(refused)
	if v, err := f.Call(ctx, 1); v != 2 || err != nil {
		t.Fatalf("Call with the store down = %d, %v", v, err)
	}
	if f.Stats().StoreErrors == 0 {
		t.Fatal("the store error was not seen")
	}
	const callers = 64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if v, err := f.Call(ctx, 7); v != 14 || err != nil {
				t.Errorf("Call(7) = %d, %v", v, err)
			}
		})
	}
	joined := make(chan struct{})
	go func() { clk.BlockUntil(ctx, callers-1); close(joined) }()
	select {
	case <-joined:
	case <-second:
		t.Fatal("a second run of fn started while the first was in flight")
	}
	close(release)
	wg.Wait()
	if s := f.Stats(); runs.Load() != 1 || s.StoreBypassed != callers {
		t.Fatalf("%d runs for %d callers (stats %+v), want 1 run, %d bypassed", runs.Load(), callers, s, callers)
	}
}

// Finding 11: the breaker opens on a store that cannot be reached, and then calls skip
// it for the backoff, by the Func's clock; once the store answers it is used again.
func TestUnreachableStoreIsBypassedThenRetried(t *testing.T) {
	clk := clock.NewFake(t0)
	st := &faultyStore{Store: store.Adapt(memstore.New(nil))}
	var n atomic.Int64
	fn := func(_ context.Context, x int) (int, error) { n.Add(1); return x * 2, nil }
	f, _ := cachier.Wrap(fn, cachier.Name("lifecycle/breaker"), cachier.WithStore(st), cachier.WithClock(clk), cachier.WithLogger(quietLogger()))
	ctx := context.Background()
	call := func() {
		t.Helper()
		if v, err := f.Call(ctx, 2); v != 4 || err != nil {
			t.Fatalf("Call = %d, %v", v, err)
		}
	}
	for _, down := range []error{refused, context.DeadlineExceeded, errors.New("redis: client is closed"), io.ErrUnexpectedEOF} {
		clk.Advance(time.Hour) // past any backoff
		st.failGets(down)
		before := f.Stats()
		call() // fails on the store, opens the breaker
		call() // within the backoff: straight to fn
		s := f.Stats().Sub(before)
		if s.StoreErrors == 0 || s.StoreBypassed != 1 {
			t.Fatalf("after %v: %+v, want store errors then 1 bypass", down, s)
		}
		call() // still within the backoff: the store is not tried
		if s2 := f.Stats().Sub(before); s2.StoreErrors != s.StoreErrors || s2.StoreBypassed != 2 {
			t.Fatalf("after %v: the store was tried within the backoff: %+v", down, s2)
		}
		if _, err := f.Call(ctx, 2, cachier.FailOnStoreError(true)); !errors.Is(err, cachier.ErrStore) {
			t.Fatalf("FailOnStoreError with the breaker open: %v", err)
		}
	}
	st.getErr.Store(nil)
	clk.Advance(time.Minute)
	before, runs := f.Stats(), n.Load()
	call()
	call()
	if s := f.Stats().Sub(before); s.Hits != 2 || n.Load() != runs {
		t.Fatalf("after the store came back no hit: %+v", s)
	}
}

// Finding 11: an error that belongs to one key or one value, or a failed write, does
// not turn the cache off for the other keys.
func TestOneBadKeyDoesNotBypassTheOthers(t *testing.T) {
	clk := clock.NewFake(t0)
	ctx := context.Background()
	t.Run("rejected value", func(t *testing.T) {
		st := &faultyStore{Store: store.Adapt(memstore.New(nil))}
		fn := func(_ context.Context, x int) (int, error) { return x, nil }
		f, _ := cachier.Wrap(fn, cachier.Name("lifecycle/badvalue"), cachier.WithStore(st), cachier.WithClock(clk), cachier.WithLogger(quietLogger()))
		f.Call(ctx, 1)
		// Writes fail, even as a store that is down would; reads still work.
		for _, err := range []error{errors.New("ERR string exceeds maximum allowed size (proto-max-bulk-len)"), refused, fs.ErrPermission} {
			st.failSets(err)
			f.Call(ctx, 2)
			before := f.Stats().Hits
			f.Call(ctx, 1)
			if s := f.Stats(); s.Hits != before+1 || s.StoreBypassed != 0 {
				t.Fatalf("after a failed write (%v) key 1 was not read: %+v", err, s)
			}
		}
		// A read error that is not about reaching the store is that key's miss.
		st.setErr.Store(nil)
		st.failGets(errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"))
		f.Call(ctx, 3)
		f.Call(ctx, 3)
		if s := f.Stats(); s.StoreBypassed != 0 {
			t.Fatalf("a per-key read error opened the breaker: %+v", s)
		}
	})
	t.Run("planted directory", func(t *testing.T) {
		st := newFileStore(t)
		var n atomic.Int64
		fn := func(_ context.Context, x int) (int, error) { n.Add(1); return x, nil }
		f, _ := cachier.Wrap(fn, cachier.Name("lifecycle/planted"), cachier.WithStore(st), cachier.WithClock(clk), cachier.WithLogger(quietLogger()))
		dir, _ := f.CacheDir()
		f.Call(ctx, 1)
		before := files(t, dir)
		f.Call(ctx, 2)
		for p := range files(t, dir) {
			if !before[p] && filepath.Base(p)[0] != '.' { // key 2's entry: a directory takes its place
				mustRemoveAll(t, p)
				if err := os.MkdirAll(filepath.Join(p, "planted"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
		}
		for range 20 {
			f.Call(ctx, 2)
			f.Call(ctx, 1)
		}
		if s := f.Stats(); s.Hits != 20 || s.StoreBypassed != 0 {
			t.Fatalf("with one planted entry the healthy key got %d hits of 20 (%+v)", s.Hits, s)
		}
	})
}

// files lists the regular files under dir.
func files(t *testing.T, dir string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			m[p] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Issue 12: after ClearBeingCalculated a new caller in this process starts its own
// computation instead of joining the stuck one.
func TestClearBeingCalculatedFreesThisProcess(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		stuck := make(chan struct{})
		defer close(stuck)
		started := make(chan struct{})
		var n atomic.Int64
		fn := func(_ context.Context, x int) (int, error) {
			if n.Add(1) == 1 {
				close(started)
				<-stuck
				return -1, nil
			}
			return 5, nil
		}
		f, _ := cachier.Wrap(fn, cachier.Name("lifecycle/clearcalc"), cachier.WithStore(newStore(t)))
		ctx := context.Background()
		go f.Call(ctx, 1)
		<-started
		if err := f.ClearBeingCalculated(ctx); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute) // fails rather than hangs if it joins
		defer cancel()
		if v, err := f.Call(ctx, 1); v != 5 || err != nil {
			t.Fatalf("after ClearBeingCalculated = %d, %v; want a computation of its own", v, err)
		}
	})
}

// Close waits for a NextTime refresh under way, which then stores its result.
func TestCloseWaitsForTheBackgroundRefresh(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		clk := clock.NewFake(t0)
		st := newStore(t)
		release := make(chan struct{})
		var n atomic.Int64
		fn := func(_ context.Context, x int) (int, error) {
			if n.Add(1) > 1 {
				<-release
			}
			return int(n.Load()), nil
		}
		opts := []cachier.Option{cachier.Name("lifecycle/closerefresh"), cachier.WithStore(st), cachier.WithClock(clk),
			cachier.StaleAfter(time.Minute), cachier.NextTime(true)}
		f, _ := cachier.Wrap(fn, opts...)
		ctx := context.Background()
		f.Call(ctx, 1)
		clk.Advance(2 * time.Minute)
		if v, _ := f.Call(ctx, 1); v != 1 {
			t.Fatalf("stale hit = %d", v)
		}
		closed := make(chan error, 1)
		go func() { closed <- f.Close(ctx) }()
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while the refresh was still running", err)
		default:
		}
		close(release)
		if err := recv(t, "Close", closed); err != nil {
			t.Fatal(err)
		}
		if s := f.Stats(); s.Refreshes != 1 {
			t.Fatalf("after Close: %+v, want the refresh stored", s)
		}
		// Another Func on the store (as the next process would) reads the refresh.
		g, _ := cachier.Wrap(func(context.Context, int) (int, error) { return -1, nil }, opts...)
		if v, _ := g.Call(ctx, 1); v != 2 {
			t.Fatalf("after Close the next reader got %d, want the refreshed 2", v)
		}
	})
}

// Close that gives up on ctx releases the leases its computations hold, so another
// process need not wait for them to expire; later calls run fn without the store.
func TestCloseReleasesLeasesAndThenRunsDirectly(t *testing.T) {
	st := newFileStore(t)
	stuck := make(chan struct{})
	defer close(stuck)
	started := make(chan struct{})
	var n atomic.Int64
	fn := func(_ context.Context, x int) (int, error) {
		if n.Add(1) == 1 {
			close(started)
			<-stuck
		}
		return 8, nil
	}
	opts := []cachier.Option{cachier.Name("lifecycle/closelease"), cachier.WithStore(st), cachier.LeaseTTL(time.Hour)}
	f, _ := cachier.Wrap(fn, opts...)
	ctx := context.Background()
	go f.Call(ctx, 1)
	<-started
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.Close(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a done context = %v, want context.Canceled", err)
	}
	for l, err := range st.Leases(ctx, f.Namespace()) {
		t.Fatalf("lease left after Close: %+v, %v", l, err)
	}
	// Another process's caller computes at once instead of waiting an hour.
	g, _ := cachier.Wrap(func(context.Context, int) (int, error) { return 9, nil }, opts...)
	got := make(chan int, 1)
	go func() { v, _ := g.Call(ctx, 1); got <- v }()
	if v := recv(t, "the other caller", got); v != 9 {
		t.Fatalf("other caller = %d", v)
	}
	// After Close: fn runs directly, and management says the Func is closed.
	before := f.Stats()
	if v, err := f.Call(ctx, 2); v != 8 || err != nil {
		t.Fatalf("Call after Close = %d, %v", v, err)
	}
	if s := f.Stats().Sub(before); s.SkippedCalls != 1 || s.Computations != 1 {
		t.Fatalf("Call after Close: %+v, want fn run directly", s)
	}
	if err := f.Invalidate(ctx, 2); !errors.Is(err, cachier.ErrClosed) {
		t.Fatalf("Invalidate after Close = %v, want ErrClosed", err)
	}
}

type valueKey struct{}

// ComputeTimeout: fn's context carries the deadline, by the Func's clock, and the
// caller's values; a caller that joined the run gets ErrComputeTimeout once the run
// overstays.
func TestComputeTimeout(t *testing.T) {
	clk := clock.NewFake(t0)
	type seen struct {
		deadline time.Time
		value    any
		err      error
	}
	seenc := make(chan seen, 1)
	stuck := make(chan struct{})
	defer close(stuck)
	fn := func(ctx context.Context, x int) (int, error) {
		dl, _ := ctx.Deadline()
		if x == 1 { // respects its context
			<-ctx.Done()
			seenc <- seen{dl, ctx.Value(valueKey{}), ctx.Err()}
			return 0, ctx.Err()
		}
		<-stuck // ignores it
		return 0, nil
	}
	f, _ := cachier.Wrap(fn, cachier.Name("lifecycle/computetimeout"), cachier.WithStore(memstore.New(nil)),
		cachier.WithClock(clk), cachier.ComputeTimeout(time.Second))
	ctx := context.WithValue(context.Background(), valueKey{}, "v")
	errc := make(chan error, 1)
	go func() { _, err := f.Call(ctx, 1); errc <- err }()
	blockUntil(t, clk, 1)
	clk.Advance(time.Second)
	got := recv(t, "fn's view of its context", seenc)
	if !got.deadline.Equal(t0.Add(time.Second)) || got.value != "v" || got.err != context.DeadlineExceeded {
		t.Fatalf("fn saw deadline %v, value %v, err %v; want %v, the caller's value, DeadlineExceeded", got.deadline, got.value, got.err, t0.Add(time.Second))
	}
	if err := recv(t, "the caller's error", errc); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller = %v", err)
	}
	// A run that ignores its deadline: the caller that joined it stops waiting.
	go f.Call(ctx, 2)
	blockUntil(t, clk, 1) // the leader's deadline
	go func() { _, err := f.Call(ctx, 2); errc <- err }()
	blockUntil(t, clk, 2) // and the joined caller's
	clk.Advance(time.Second)
	if err := recv(t, "the joined caller's error", errc); !errors.Is(err, cachier.ErrComputeTimeout) {
		t.Fatalf("joined caller = %v, want ErrComputeTimeout", err)
	}
}

// Past ComputeTimeout the lease is no longer renewed: a caller in another process
// takes over once it runs out, even though fn still hangs.
func TestComputeTimeoutStopsRenewingTheLease(t *testing.T) {
	clk := clock.NewFake(t0)
	fst, err := filestore.New(&filestore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fst.Close()
	st := store.Adapt(fst, store.WithClock(clk)) // leases expire by the fake clock
	stuck := make(chan struct{})
	started := make(chan struct{})
	fn := func(_ context.Context, x int) (int, error) {
		close(started)
		<-stuck // ignores its deadline
		return 0, nil
	}
	opts := []cachier.Option{cachier.Name("lifecycle/deadlinelease"), cachier.WithStore(st), cachier.WithClock(clk),
		cachier.LeaseTTL(30 * time.Second), cachier.WithLogger(quietLogger())}
	a, _ := cachier.Wrap(fn, append(opts, cachier.ComputeTimeout(15*time.Second))...)
	b, _ := cachier.Wrap(func(context.Context, int) (int, error) { return 3, nil }, opts...)
	ctx := context.Background()
	// Once fn is let go, a's computation writes to the store's directory in the
	// background: wait for it (Close) before the store closes and t.TempDir is
	// removed (CI saw "directory not empty").
	defer func() {
		close(stuck)
		a.Close(ctx)
	}()
	go a.Call(ctx, 1)
	<-started
	blockUntil(t, clk, 2) // a's deadline (15s) and its first renewal (10s)
	clk.Advance(10 * time.Second)
	blockUntil(t, clk, 2) // renewed once, before the deadline: expires at 40s
	clk.Advance(10 * time.Second)
	got := make(chan int, 1)
	go func() { v, _ := b.Call(ctx, 1); got <- v }()
	// Move the clock on in small steps until b takes the lease over; while a renewed
	// it, b would wait for ever.
	for range 20000 {
		select {
		case v := <-got:
			if v != 3 || b.Stats().LeaseTakeovers != 1 {
				t.Fatalf("other process = %d, stats %+v; want 3 after a takeover", v, b.Stats())
			}
			return
		case <-time.After(time.Millisecond): // let the waiters run; the clock is fake
			clk.Advance(100 * time.Millisecond)
		}
	}
	t.Fatalf("b never took the lease over (clock at %v)", clk.Now().Sub(t0))
}

// CancelWhenAbandoned cancels fn once every caller waiting for it has left, and not
// before.
func TestCancelWhenAbandoned(t *testing.T) {
	clk := clock.NewFake(t0)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	fnErr := make(chan error, 1)
	fn := func(ctx context.Context, x int) (int, error) {
		started <- struct{}{}
		wait := release
		if x == 2 {
			wait = nil // only its context ends this one
		}
		select {
		case <-wait:
			return 1, nil
		case <-ctx.Done():
			fnErr <- ctx.Err()
			return 0, ctx.Err()
		}
	}
	// WaitForCalcTimeout arms a timer (never fired) when a caller joins the run.
	f, _ := cachier.Wrap(fn, cachier.Name("lifecycle/abandoned"), cachier.WithStore(memstore.New(nil)),
		cachier.CancelWhenAbandoned(true), cachier.WithClock(clk), cachier.WaitForCalcTimeout(time.Hour))
	call := func(ctx context.Context, x int) <-chan error {
		c := make(chan error, 1)
		go func() { _, err := f.Call(ctx, x); c <- err }()
		return c
	}
	// Two callers; one leaves: fn goes on for the other.
	ctxA, cancelA := context.WithCancel(context.Background())
	a := call(ctxA, 1)
	<-started
	b := call(context.Background(), 1)
	blockUntil(t, clk, 1) // b joined
	cancelA()
	if err := recv(t, "a", a); !errors.Is(err, context.Canceled) {
		t.Fatalf("a = %v", err)
	}
	close(release)
	if err := recv(t, "b", b); err != nil {
		t.Fatalf("b = %v: fn was cancelled while b still waited", err)
	}
	// One caller, who leaves: fn's context is cancelled.
	ctxC, cancelC := context.WithCancel(context.Background())
	c := call(ctxC, 2)
	<-started
	cancelC()
	<-c
	if err := recv(t, "fn's cancellation", fnErr); err != context.Canceled {
		t.Fatalf("fn's context = %v, want context.Canceled", err)
	}
}

// Two functions of different types cannot share a namespace in one process by
// accident; the same types can, on purpose.
func TestNamespaceTypesMustAgree(t *testing.T) {
	st := memstore.New(nil)
	ints := func(_ context.Context, x int) (int, error) { return x, nil }
	strs := func(_ context.Context, x string) (int, error) { return len(x), nil }
	texts := func(_ context.Context, x int) (string, error) { return "", nil }
	if _, err := cachier.Wrap(ints, cachier.Name("lifecycle/shared"), cachier.WithStore(st)); err != nil {
		t.Fatal(err)
	}
	if _, err := cachier.Wrap(ints, cachier.Name("lifecycle/shared"), cachier.WithStore(st)); err != nil {
		t.Fatalf("the same types under one name: %v", err)
	}
	for _, err := range []error{
		func() error {
			_, err := cachier.Wrap(strs, cachier.Name("lifecycle/shared"), cachier.WithStore(st))
			return err
		}(),
		func() error {
			_, err := cachier.Wrap(texts, cachier.Name("lifecycle/shared"), cachier.WithStore(st))
			return err
		}(),
	} {
		if !errors.Is(err, cachier.ErrOption) {
			t.Fatalf("other types under one name: %v, want ErrOption", err)
		}
	}
	if _, err := cachier.Wrap(strs, cachier.Name("lifecycle/shared"), cachier.Version("2"), cachier.WithStore(st)); err != nil {
		t.Fatalf("another Version is another namespace: %v", err)
	}
}

// A caller whose first try finds a dead holder's lease already run out takes it over
// and counts the takeover, though it never waited (on a busy machine the dead holder's
// lease may expire before the next process even starts).
func TestTakeoverWithoutWaitingIsCounted(t *testing.T) {
	clk := clock.NewFake(t0)
	st := store.Adapt(newFileDriver(t), store.WithClock(clk))
	k := store.Key{Namespace: "lifecycle/takeover", ID: "x"}
	f, err := cachier.Wrap(func(context.Context, int) (int, error) { return 7, nil },
		cachier.Name("lifecycle/takeover"), cachier.WithStore(st), cachier.WithClock(clk),
		cachier.WithKey(func(int) (string, error) { return "x", nil }), cachier.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	dead := store.Owner{Host: "gone", PID: 1, Token: "dead-holder-token"}
	if _, err := st.Acquire(context.Background(), k, dead, time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if v, err := f.Call(context.Background(), 1); err != nil || v != 7 {
		t.Fatalf("Call = %v, %v", v, err)
	}
	if n := f.Stats().LeaseTakeovers; n != 1 {
		t.Fatalf("LeaseTakeovers = %d, want 1", n)
	}
}
