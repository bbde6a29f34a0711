package cachier_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// future is where the expiry tests' fake clocks start: later than any real clock
// the stores read, so that a store's own expiry check never fires before the core's.
var future = time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC)

// recordingStore remembers the last entry written through it.
type recordingStore struct {
	store.Store
	mu   sync.Mutex
	last store.Entry
}

func (r *recordingStore) Set(ctx context.Context, k store.Key, e store.Entry) error {
	r.mu.Lock()
	r.last = e
	r.mu.Unlock()
	return r.Store.Set(ctx, k, e)
}

func (r *recordingStore) lastEntry() store.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Every write carries the time after which the entry is useless.
func TestExpiresAtOnEveryWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []cachier.Option
		want time.Duration // after StoredAt; 0: never expires
	}{
		{"no staleness", nil, 0},
		{"StaleAfter", []cachier.Option{cachier.StaleAfter(time.Minute)}, time.Minute},
		{"NextTime unbounded", []cachier.Option{cachier.StaleAfter(time.Minute), cachier.NextTime(true)}, 0},
		{"NextTime MaxStale", []cachier.Option{cachier.StaleAfter(time.Minute), cachier.NextTime(true), cachier.MaxStale(10 * time.Minute)}, 11 * time.Minute},
		{"ExpireAfter alone", []cachier.Option{cachier.ExpireAfter(time.Hour)}, time.Hour},
		{"ExpireAfter wins", []cachier.Option{cachier.StaleAfter(time.Minute), cachier.NextTime(true), cachier.ExpireAfter(5 * time.Minute)}, 5 * time.Minute},
		{"StaleAfterFunc", []cachier.Option{cachier.StaleAfter(time.Minute), cachier.StaleAfterFunc(func(int, int) time.Duration { return 3 * time.Minute })}, 3 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewFake(future)
			rs := &recordingStore{Store: store.Adapt(memstore.New(nil))}
			opts := append([]cachier.Option{cachier.Name("expiresat"), cachier.WithStore(rs), cachier.WithClock(clk)}, tc.opts...)
			f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x, nil }, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Call(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			e := rs.lastEntry()
			if !e.StoredAt.Equal(future) {
				t.Fatalf("StoredAt = %v, want %v", e.StoredAt, future)
			}
			switch {
			case tc.want == 0 && !e.ExpiresAt.IsZero():
				t.Fatalf("ExpiresAt = %v, want zero (never)", e.ExpiresAt)
			case tc.want != 0 && !e.ExpiresAt.Equal(future.Add(tc.want)):
				t.Fatalf("ExpiresAt = StoredAt + %v, want + %v", e.ExpiresAt.Sub(e.StoredAt), tc.want)
			}
		})
	}
}

// counting returns a function that answers its call count, and the count.
func counting() (func(context.Context, int) (int, error), *atomic.Int64) {
	var n atomic.Int64
	return func(context.Context, int) (int, error) { return int(n.Add(1)), nil }, &n
}

// Past ExpireAfter, an entry is a miss even with no staleness at all.
func TestExpireAfterMakesAMiss(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		clk := clock.NewFake(future)
		fn, _ := counting()
		f, err := cachier.Wrap(fn, cachier.Name("expireafter"), cachier.WithStore(newStore(t)), cachier.WithClock(clk),
			cachier.ExpireAfter(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if v, _ := f.Call(ctx, 1); v != 1 {
			t.Fatalf("first = %d", v)
		}
		clk.Advance(59 * time.Second)
		if v, _ := f.Call(ctx, 1); v != 1 {
			t.Fatalf("before expiry = %d, want the stored 1", v)
		}
		clk.Advance(time.Second)
		if v, _ := f.Call(ctx, 1); v != 2 {
			t.Fatalf("at expiry = %d, want a new computation", v)
		}
		if st := f.Stats(); st.Expired != 1 || st.Hits != 1 || st.Misses != 2 {
			t.Fatalf("stats: expired %d hits %d misses %d, want 1 1 2", st.Expired, st.Hits, st.Misses)
		}
	})
}

// The ExpiresAt a store returns is honoured even when this call's own options would
// keep the entry longer.
func TestStoredExpiresAtIsHonoured(t *testing.T) {
	clk := clock.NewFake(future)
	fn, _ := counting()
	f, err := cachier.Wrap(fn, cachier.Name("storedexpiry"), cachier.WithStore(memstore.New(nil)), cachier.WithClock(clk),
		cachier.ExpireAfter(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.Call(ctx, 1)
	clk.Advance(2 * time.Minute)
	if v, _ := f.Call(ctx, 1, cachier.ExpireAfter(time.Hour)); v != 2 {
		t.Fatalf("past the stored ExpiresAt = %d, want a new computation", v)
	}
}

// NextTime serves a stale result only up to MaxStale past its stale limit; past it the
// call computes as if there were no entry.
func TestMaxStaleBoundsNextTime(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		clk := clock.NewFake(future)
		fn, _ := counting()
		f, err := cachier.Wrap(fn, cachier.Name("maxstale"), cachier.WithStore(newStore(t)), cachier.WithClock(clk),
			cachier.StaleAfter(time.Minute), cachier.NextTime(true), cachier.MaxStale(10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		f.Call(ctx, 1)
		clk.Advance(11 * time.Minute) // StaleAfter + MaxStale
		v, err := f.Call(ctx, 1)
		if v != 2 || err != nil {
			t.Fatalf("past MaxStale = %d, %v; want a fresh computation, not the stale 1", v, err)
		}
		if st := f.Stats(); st.StaleHits != 0 || st.Expired != 1 || st.Refreshes != 0 {
			t.Fatalf("stats: stale hits %d expired %d refreshes %d, want 0 1 0", st.StaleHits, st.Expired, st.Refreshes)
		}
		// Within MaxStale it is still a stale hit.
		clk.Advance(5 * time.Minute)
		if v, _ := f.Call(ctx, 1); v != 2 {
			t.Fatalf("within MaxStale = %d, want the stale 2", v)
		}
		waitFor(t, "the refresh", func() bool { return f.Stats().Refreshes == 1 })
	})
}

// A failed background refresh is not retried on every call: the key backs off,
// doubling its delay with each failure in a row, and a success resets it.
func TestFailedRefreshBacksOff(t *testing.T) {
	clk := clock.NewFake(future)
	var fail atomic.Bool
	var runs atomic.Int64
	fn := func(context.Context, int) (int, error) {
		n := runs.Add(1)
		if fail.Load() {
			return 0, errors.New("upstream down")
		}
		return int(n), nil
	}
	log, _ := testLogger()
	f, err := cachier.Wrap(fn, cachier.Name("backoff"), cachier.WithStore(memstore.New(nil)), cachier.WithClock(clk),
		cachier.StaleAfter(time.Minute), cachier.NextTime(true), cachier.WithLogger(log),
		cachier.RefreshBackoff(10*time.Second, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.Call(ctx, 1)
	fail.Store(true)
	clk.Advance(2 * time.Minute)

	// A call may find the last refresh still on its way out (counted, not yet gone),
	// and start none: call until one starts and fails.
	callUntil := func(what string, cond func(cachier.Stats) bool) {
		t.Helper()
		waitFor(t, what, func() bool {
			if v, err := f.Call(ctx, 1); err != nil || (v != 1 && fail.Load()) {
				t.Fatalf("stale call = %d, %v; want the stale 1", v, err)
			}
			return cond(f.Stats())
		})
	}
	errorsAfter := func(want uint64) {
		t.Helper()
		callUntil("the refresh to fail", func(st cachier.Stats) bool { return st.RefreshErrors == want })
	}
	backedOff := func() {
		t.Helper()
		before := f.Stats()
		for range 5 {
			if v, _ := f.Call(ctx, 1); v != 1 {
				t.Fatalf("stale call = %d", v)
			}
		}
		after := f.Stats()
		if got := after.RefreshesBackedOff - before.RefreshesBackedOff; got != 5 {
			t.Fatalf("backed off %d of 5 calls", got)
		}
		if after.Computations != before.Computations {
			t.Fatalf("fn ran %d times during the backoff", after.Computations-before.Computations)
		}
	}
	errorsAfter(1) // first failure: 10s
	backedOff()
	clk.Advance(10 * time.Second)
	errorsAfter(2) // second failure in a row: 20s
	clk.Advance(10 * time.Second)
	backedOff()
	clk.Advance(10 * time.Second)
	errorsAfter(3) // third: 40s, capped at 30s
	clk.Advance(29 * time.Second)
	backedOff()
	clk.Advance(time.Second)
	fail.Store(false)
	callUntil("the refresh to succeed", func(st cachier.Stats) bool { return st.Refreshes == 1 })
}

// A hit in the last window of the fresh period refreshes the entry in the background
// (once), so that a hot key never goes stale; before the window, nothing happens.
func TestRefreshAheadRefreshesBeforeStale(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		clk := clock.NewFake(future)
		fn, runs := counting()
		f, err := cachier.Wrap(fn, cachier.Name("refreshahead"), cachier.WithStore(newStore(t)), cachier.WithClock(clk),
			cachier.StaleAfter(10*time.Minute), cachier.RefreshAhead(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		f.Call(ctx, 1)
		clk.Advance(8*time.Minute - time.Millisecond) // before any key's window
		if v, _ := f.Call(ctx, 1); v != 1 {
			t.Fatalf("before the window = %d", v)
		}
		if runs.Load() != 1 {
			t.Fatalf("fn ran %d times before the window, want 1", runs.Load())
		}
		clk.Advance(2*time.Minute - time.Millisecond) // 1ms before stale: past every point in the window
		if v, _ := f.Call(ctx, 1); v != 1 {
			t.Fatalf("in the window = %d, want the current 1 at once", v)
		}
		for range 16 { // the refresh may land meanwhile
			if v, _ := f.Call(ctx, 1); v != 1 && v != 2 {
				t.Fatalf("in the window = %d, want 1 or 2", v)
			}
		}
		waitFor(t, "the refresh ahead", func() bool { return f.Stats().Refreshes == 1 })
		clk.Advance(time.Minute) // past the first entry's stale limit
		if v, _ := f.Call(ctx, 1); v != 2 {
			t.Fatalf("after the refresh = %d, want 2 with no miss", v)
		}
		if st := f.Stats(); st.Misses != 1 || runs.Load() != 2 {
			t.Fatalf("misses %d, runs %d; want 1 and 2", st.Misses, runs.Load())
		}
	})
}

// Options that contradict each other are errors that say what to do.
func TestExpiryOptionErrors(t *testing.T) {
	fn := func(_ context.Context, x int) (int, error) { return x, nil }
	for _, tc := range []struct {
		name string
		opts []cachier.Option
	}{
		{"MaxStale without NextTime", []cachier.Option{cachier.StaleAfter(time.Minute), cachier.MaxStale(time.Minute)}},
		{"RefreshAhead without StaleAfter", []cachier.Option{cachier.RefreshAhead(time.Minute)}},
		{"RefreshAhead too wide", []cachier.Option{cachier.StaleAfter(time.Minute), cachier.RefreshAhead(time.Minute)}},
		{"ExpireAfter zero", []cachier.Option{cachier.ExpireAfter(0)}},
		{"MaxStale negative", []cachier.Option{cachier.MaxStale(-time.Second)}},
		{"RefreshAhead zero", []cachier.Option{cachier.RefreshAhead(0)}},
		{"RefreshBackoff inverted", []cachier.Option{cachier.RefreshBackoff(time.Minute, time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]cachier.Option{cachier.Name("experr"), cachier.WithStore(memstore.New(nil))}, tc.opts...)
			f, err := cachier.Wrap(fn, opts...)
			if err == nil {
				_, err = f.Call(context.Background(), 1)
			}
			if !errors.Is(err, cachier.ErrOption) {
				t.Fatalf("err = %v, want ErrOption", err)
			}
		})
	}
	// A Call option is checked against the rest too.
	f, _ := cachier.Wrap(fn, cachier.Name("experr2"), cachier.WithStore(memstore.New(nil)), cachier.StaleAfter(time.Minute))
	if _, err := f.Call(context.Background(), 1, cachier.MaxStale(time.Minute)); !errors.Is(err, cachier.ErrOption) {
		t.Fatalf("MaxStale in Call without NextTime: err = %v, want ErrOption", err)
	}
}
