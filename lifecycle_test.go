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
	"github.com/cachier-go/cachier/store/memstore"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

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
