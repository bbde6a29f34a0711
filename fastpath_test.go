package cachier

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store/memstore"
)

// counted is a function that returns how many times it has run, for its argument.
type counted struct{ n atomic.Int64 }

func (c *counted) fn(_ context.Context, x int) (string, error) {
	return fmt.Sprintf("%d#%d", x, c.n.Add(1)), nil
}

// warm calls f until its first level answers for x, and returns the value.
func warm[R any](t *testing.T, f *Func[int, R], x int) R {
	t.Helper()
	ctx := context.Background()
	first, err := f.Call(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Call(ctx, x); err != nil { // fills the first level
		t.Fatal(err)
	}
	v, ok := f.hotProbe(x)
	if !ok {
		t.Fatalf("the first level does not answer for %d after two calls", x)
	}
	if fmt.Sprint(v) != fmt.Sprint(first) {
		t.Fatalf("first level answered %v, the store %v", v, first)
	}
	return v
}

func call[R any](t *testing.T, f *Func[int, R], x int, opts ...Option) R {
	t.Helper()
	v, err := f.Call(context.Background(), x, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFirstLevelIsDroppedWithTheEntry checks every way an entry can stop being the
// stored one: the first level must stop serving it at once, in this process.
func TestFirstLevelIsDroppedWithTheEntry(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		opts   []Option
		mutate func(t *testing.T, f *Func[int, string], st *memstore.Store)
	}{
		{"Invalidate", nil, func(t *testing.T, f *Func[int, string], _ *memstore.Store) {
			if err := f.Invalidate(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}},
		{"Clear", nil, func(t *testing.T, f *Func[int, string], _ *memstore.Store) {
			if err := f.Clear(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"Overwrite", nil, func(t *testing.T, f *Func[int, string], _ *memstore.Store) {
			call(t, f, 1, Overwrite())
		}},
		{"Refresh", nil, func(t *testing.T, f *Func[int, string], _ *memstore.Store) {
			if _, err := f.Refresh(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}},
		{"Precache", nil, func(t *testing.T, f *Func[int, string], _ *memstore.Store) {
			if err := f.Precache(ctx, 1, "precached"); err != nil {
				t.Fatal(err)
			}
		}},
		{"store Delete", nil, func(t *testing.T, f *Func[int, string], st *memstore.Store) {
			k, _ := f.Key(1)
			if err := st.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}},
		{"store Clear", nil, func(t *testing.T, f *Func[int, string], st *memstore.Store) {
			if err := st.Clear(ctx, f.Namespace()); err != nil {
				t.Fatal(err)
			}
		}},
		{"store DeleteBefore", nil, func(t *testing.T, f *Func[int, string], st *memstore.Store) {
			if _, err := st.DeleteBefore(ctx, f.Namespace(), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}},
		{"another Func writes the key", nil, func(t *testing.T, f *Func[int, string], st *memstore.Store) {
			g, err := Wrap(func(ctx context.Context, x int) (string, error) { return "other", nil },
				Name(f.Namespace()), WithStore(st))
			if err != nil {
				t.Fatal(err)
			}
			call(t, g, 1, Overwrite())
		}},
		{"InvalidateTags", []Option{Tags("t")}, func(t *testing.T, f *Func[int, string], st *memstore.Store) {
			if err := InvalidateTags(ctx, st, "t"); err != nil {
				t.Fatal(err)
			}
		}},
		{"InvalidatePrefix", []Option{Prefix(func(x int) string { return "p" })}, func(t *testing.T, f *Func[int, string], st *memstore.Store) {
			if err := InvalidatePrefix(ctx, st, "p"); err != nil {
				t.Fatal(err)
			}
		}},
		{"TagsOf", []Option{TagsOf(func(x int) []string { return []string{fmt.Sprint("x", x)} })}, func(t *testing.T, f *Func[int, string], st *memstore.Store) {
			if err := f.InvalidateTags(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New(nil)
			var c counted
			f, err := Wrap(c.fn, append([]Option{Name("hot/" + tc.name), WithStore(st)}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			before := warm(t, f, 1)
			warm(t, f, 2)
			tc.mutate(t, f, st)
			if v, ok := f.hotProbe(1); ok {
				t.Fatalf("after %s the first level still serves %q", tc.name, v)
			}
			if after := call(t, f, 1); after == before {
				t.Fatalf("after %s, Call returned the old %q", tc.name, before)
			}
		})
	}
}

func TestFirstLevelDependsOnParent(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(nil)
	var pc, cc counted
	parent, err := Wrap(pc.fn, Name("hot/parent"), WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	child, err := Wrap(cc.fn, Name("hot/child"), WithStore(st), DependsOn(parent))
	if err != nil {
		t.Fatal(err)
	}
	before := warm(t, child, 1)
	if err := parent.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := child.hotProbe(1); ok {
		t.Fatal("after the parent was cleared the child's first level still serves")
	}
	if after := call(t, child, 1); after == before {
		t.Fatalf("after the parent was cleared the child returned the old %q", before)
	}
}

func TestFirstLevelEviction(t *testing.T) {
	st := memstore.New(&memstore.Options{MaxEntries: 2})
	var c counted
	f, err := Wrap(c.fn, Name("hot/evict"), WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	before := warm(t, f, 1)
	call(t, f, 2)
	call(t, f, 3) // evicts 1 (never hit since the hand passed) or 2
	call(t, f, 4)
	if st.Len() > 2 {
		t.Fatalf("store holds %d entries, bound 2", st.Len())
	}
	k, _ := f.Key(1)
	if _, err := st.Get(context.Background(), k); err == nil {
		t.Skip("the CLOCK kept 1; nothing to check")
	}
	if v, ok := f.hotProbe(1); ok {
		t.Fatalf("the store evicted 1, but the first level still serves %q", v)
	}
	if after := call(t, f, 1); after == before {
		t.Fatalf("after eviction Call returned the old %q", before)
	}
}

func TestFirstLevelStoreClosed(t *testing.T) {
	st := memstore.New(nil)
	var c counted
	f, err := Wrap(c.fn, Name("hot/closed"), WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	warm(t, f, 1)
	st.Close()
	if v, ok := f.hotProbe(1); ok {
		t.Fatalf("the store is closed, but the first level still serves %q", v)
	}
}

// TestFirstLevelStaleness checks that StaleAfter, StaleAfterFunc, MaxAge, NextTime,
// Disable, SkipCache and SetDefaults decide as they do without the first level.
func TestFirstLevelStaleness(t *testing.T) {
	t.Run("StaleAfter", func(t *testing.T) {
		clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		var c counted
		f, _ := Wrap(c.fn, Name("hot/stale"), WithStore(memstore.New(nil)), WithClock(clk), StaleAfter(time.Minute))
		before := warm(t, f, 1)
		clk.Advance(59 * time.Second)
		if _, ok := f.hotProbe(1); !ok {
			t.Fatal("a fresh entry was not served by the first level")
		}
		clk.Advance(time.Second)
		if _, ok := f.hotProbe(1); ok {
			t.Fatal("a stale entry was served by the first level")
		}
		if after := call(t, f, 1); after == before {
			t.Fatal("a stale entry was returned")
		}
	})
	t.Run("StaleAfterFunc", func(t *testing.T) {
		clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		var c counted
		f, _ := Wrap(c.fn, Name("hot/stalefunc"), WithStore(memstore.New(nil)), WithClock(clk),
			StaleAfterFunc(func(int, string) time.Duration { return time.Second }))
		warm(t, f, 1)
		clk.Advance(time.Second)
		if _, ok := f.hotProbe(1); ok {
			t.Fatal("an entry past its own TTL was served by the first level")
		}
	})
	t.Run("NextTime", func(t *testing.T) {
		clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		var c counted
		f, _ := Wrap(c.fn, Name("hot/next"), WithStore(memstore.New(nil)), WithClock(clk),
			StaleAfter(time.Minute), NextTime(true))
		before := warm(t, f, 1)
		clk.Advance(time.Minute)
		if v := call(t, f, 1); v != before {
			t.Fatalf("NextTime: got %q, want the stale %q at once", v, before)
		}
		if f.Stats().StaleHits != 1 {
			t.Fatalf("stale hits = %d, want 1", f.Stats().StaleHits)
		}
	})
	t.Run("MaxAge per call", func(t *testing.T) {
		var c counted
		f, _ := Wrap(c.fn, Name("hot/maxage"), WithStore(memstore.New(nil)))
		before := warm(t, f, 1)
		if v := call(t, f, 1, MaxAge(-1)); v == before {
			t.Fatal("MaxAge(-1) returned the cached value")
		}
	})
	t.Run("Disable", func(t *testing.T) {
		var c counted
		f, _ := Wrap(c.fn, Name("hot/disable"), WithStore(memstore.New(nil)))
		before := warm(t, f, 1)
		Disable()
		v := call(t, f, 1)
		Enable()
		if v == before {
			t.Fatal("Disable: the cached value was returned")
		}
	})
	t.Run("SkipCache in Wrap", func(t *testing.T) {
		var c counted
		f, _ := Wrap(c.fn, Name("hot/skip"), WithStore(memstore.New(nil)), SkipCache())
		if call(t, f, 1) == call(t, f, 1) || call(t, f, 1) == call(t, f, 1) {
			t.Fatal("SkipCache: a cached value was returned")
		}
	})
	t.Run("SetDefaults", func(t *testing.T) {
		clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		var c counted
		f, _ := Wrap(c.fn, Name("hot/defaults"), WithStore(memstore.New(nil)), WithClock(clk))
		before := warm(t, f, 1)
		clk.Advance(time.Hour)
		if err := SetDefaults(StaleAfter(time.Minute)); err != nil {
			t.Fatal(err)
		}
		defer SetDefaults()
		if v := call(t, f, 1); v == before {
			t.Fatal("SetDefaults(StaleAfter): the first level served an entry older than the new limit")
		}
	})
}

// TestFirstLevelFollowsTheDefaultStore checks that entries filled from one store are
// not served once SetDefaults names another.
func TestFirstLevelFollowsTheDefaultStore(t *testing.T) {
	defer SetDefaults()
	if err := SetDefaults(WithStore(memstore.New(nil))); err != nil {
		t.Fatal(err)
	}
	var c counted
	f, _ := Wrap(c.fn, Name("hot/default-store"))
	before := warm(t, f, 1)
	if err := SetDefaults(WithStore(memstore.New(nil))); err != nil {
		t.Fatal(err)
	}
	v := call(t, f, 1)
	if v == before {
		t.Fatalf("after SetDefaults named an empty store, the first level served %q", v)
	}
	if again := call(t, f, 1); again != v {
		t.Fatalf("the new store holds %q, but Call returned %q (from the old store)", v, again)
	}
}

// TestFirstLevelHitAllocatesNothing checks the promise of the hot path.
func TestFirstLevelHitAllocatesNothing(t *testing.T) {
	var c counted
	f, _ := Wrap(c.fn, Name("hot/allocs"), WithStore(memstore.New(nil)))
	warm(t, f, 1234567)
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { f.Call(ctx, 1234567) }); n != 0 {
		t.Fatalf("a first-level hit allocates %v times, want 0", n)
	}
	if got := f.Stats().Hits; got < 100 {
		t.Fatalf("hits = %d, want at least 100", got)
	}
}

// TestStripedHitsAddUp checks that hits counted on many goroutines are all in Stats.
func TestStripedHitsAddUp(t *testing.T) {
	var c counted
	f, _ := Wrap(c.fn, Name("hot/striped"), WithStore(memstore.New(nil)))
	warm(t, f, 1)
	base := f.Stats().Hits
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				f.Call(context.Background(), 1)
			}
		})
	}
	wg.Wait()
	if got := f.Stats().Hits - base; got != 8000 {
		t.Fatalf("hits = %d, want 8000", got)
	}
}

// TestFirstLevelIsBounded checks that a Func's first level does not grow past maxHot.
func TestFirstLevelIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	var c counted
	f, _ := Wrap(c.fn, Name("hot/bounded"), WithStore(memstore.New(nil)))
	for i := range maxHot + 100 {
		call(t, f, i)
		call(t, f, i)
	}
	n := 0
	f.hot.m.Range(func(any, any) bool { n++; return true })
	if n > maxHot {
		t.Fatalf("first level holds %d entries, bound %d", n, maxHot)
	}
}

// hotProbe is what Call does first: the first level's answer, if it has one.
func (f *Func[A, R]) hotProbe(arg A) (R, bool) {
	r := f.resolved.Load()
	if r == nil || !r.hot {
		var zero R
		return zero, false
	}
	return f.hotCall(r, arg)
}
