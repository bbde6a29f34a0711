package cachier_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
)

var (
	errUpstream = errors.New("errcache test: upstream failed")
	errNoSuch   = errors.New("errcache test: no such user")
)

func init() {
	if err := cachier.RegisterError(errUpstream, errNoSuch); err != nil {
		panic(err)
	}
}

// Remembered errors: served without running fn for their TTL, to another Func on the
// same store as to this one, matching the registered sentinel, never as a value; "not
// found" for its own TTL; other errors are not remembered.
func TestCacheErrorsAndNotFound(t *testing.T) {
	stores(t, func(t *testing.T, newStore func(testing.TB) storeCloser) {
		clk := clock.NewFake(t0)
		st := newStore(t)
		var runs atomic.Int64
		fn := func(_ context.Context, x int) (int, error) {
			runs.Add(1)
			switch x {
			case 1:
				return 0, fmt.Errorf("user %d: %w", x, errUpstream)
			case 2:
				return 0, fmt.Errorf("user %d: %w", x, errNoSuch)
			case 3:
				return 0, errors.New("not remembered")
			}
			return x, nil
		}
		opts := []cachier.Option{cachier.Name("errcache"), cachier.WithStore(st), cachier.WithClock(clk),
			cachier.CacheErrors(func(err error) bool { return errors.Is(err, errUpstream) }, time.Minute),
			cachier.CacheNotFound(func(err error) bool { return errors.Is(err, errNoSuch) }, time.Hour)}
		f, err := cachier.Wrap(fn, opts...)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := cachier.Wrap(fn, opts...) // as another process would
		ctx := context.Background()
		for _, x := range []int{1, 2, 3} {
			if _, err := f.Call(ctx, x); err == nil || errors.Is(err, cachier.ErrCached) {
				t.Fatalf("first Call(%d) = %v, want fn's own error", x, err)
			}
		}
		check := func(h *cachier.Func[int, int], x int, sentinel error, notFound bool) {
			t.Helper()
			before := runs.Load()
			v, err := h.Call(ctx, x)
			var ce *cachier.CachedError
			if v != 0 || !errors.Is(err, cachier.ErrCached) || !errors.Is(err, sentinel) || !errors.As(err, &ce) || ce.NotFound != notFound {
				t.Fatalf("Call(%d) = %d, %v; want the remembered error matching %v (not found: %v)", x, v, err, sentinel, notFound)
			}
			if ce.Message != fmt.Sprintf("user %d: %v", x, sentinel) || runs.Load() != before {
				t.Fatalf("Call(%d): message %q, fn ran %d times", x, ce.Message, runs.Load()-before)
			}
		}
		check(g, 1, errUpstream, false)
		check(g, 2, errNoSuch, true)
		check(f, 1, errUpstream, false)
		before := runs.Load()
		if _, err := g.Call(ctx, 3); errors.Is(err, cachier.ErrCached) || runs.Load() != before+1 {
			t.Fatalf("an error CacheErrors does not match was remembered: %v", err)
		}
		if _, fr, _ := g.Peek(ctx, 1); fr != cachier.Missing {
			t.Fatalf("Peek of a remembered error = %v, want Missing: it is never a value", fr)
		}
		clk.Advance(time.Minute) // the error's TTL passes; "not found" stays
		before = runs.Load()
		if _, err := g.Call(ctx, 1); errors.Is(err, cachier.ErrCached) || runs.Load() != before+1 {
			t.Fatalf("after its TTL the error was served again: %v", err)
		}
		check(g, 2, errNoSuch, true)
		clk.Advance(time.Hour)
		before = runs.Load()
		if _, err := g.Call(ctx, 2); errors.Is(err, cachier.ErrCached) || runs.Load() != before+1 {
			t.Fatalf("after its TTL not-found was served again: %v", err)
		}
	})
}

// A failed background refresh keeps the stale value: it never stores the error over it.
func TestCacheErrorsKeepTheStaleValueOnAFailedRefresh(t *testing.T) {
	clk := clock.NewFake(t0)
	var fail atomic.Bool
	fn := func(_ context.Context, x int) (int, error) {
		if fail.Load() {
			return 0, errUpstream
		}
		return 7, nil
	}
	f, _ := cachier.Wrap(fn, cachier.Name("errcache/refresh"), cachier.WithStore(newFileStore(t)), cachier.WithClock(clk),
		cachier.StaleAfter(time.Minute), cachier.NextTime(true), cachier.WithLogger(quietLogger()),
		cachier.CacheErrors(func(error) bool { return true }, time.Hour))
	ctx := context.Background()
	f.Call(ctx, 1)
	clk.Advance(2 * time.Minute)
	fail.Store(true)
	if v, err := f.Call(ctx, 1); v != 7 || err != nil {
		t.Fatalf("stale hit = %d, %v", v, err)
	}
	waitFor(t, "the refresh to fail", func() bool { return f.Stats().RefreshErrors == 1 })
	if v, err := f.Call(ctx, 1); v != 7 || err != nil {
		t.Fatalf("after a failed refresh = %d, %v; want the stale 7", v, err)
	}
}

func TestCacheErrorsOptionErrors(t *testing.T) {
	fn := func(_ context.Context, x int) (int, error) { return x, nil }
	for _, o := range []cachier.Option{
		cachier.CacheErrors(nil, time.Minute),
		cachier.CacheErrors(func(error) bool { return true }, 0),
		cachier.CacheNotFound(func(error) bool { return true }, -time.Second),
	} {
		if _, err := cachier.Wrap(fn, cachier.Name("errcache/opts"), o); !errors.Is(err, cachier.ErrOption) {
			t.Fatalf("%v: %v, want ErrOption", o, err)
		}
	}
	if err := cachier.RegisterError(errors.New(errUpstream.Error())); !errors.Is(err, cachier.ErrOption) {
		t.Fatalf("a second sentinel with the same message: %v", err)
	}
	if err := cachier.RegisterError(nil); !errors.Is(err, cachier.ErrOption) {
		t.Fatalf("RegisterError(nil): %v", err)
	}
}
