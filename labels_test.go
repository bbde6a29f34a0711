package cachier_test

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// goroutineLabels returns the pprof labels of the calling goroutine as the goroutine
// profile prints them ({"k":"v"}; "{}" for none): the goroutine profile is the one
// place runtime/pprof shows a goroutine's own labels (pprof.Label reads a context's).
//
//go:noinline
func goroutineLabels(t *testing.T) string {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		t.Error(err)
		return ""
	}
	// Records are separated by blank lines; the calling goroutine's is the one whose
	// stack is in this function, writing the profile.
	for _, rec := range strings.Split(buf.String(), "\n\n") {
		if !strings.Contains(rec, "cachier_test.goroutineLabels") || !strings.Contains(rec, "runtime/pprof.writeGoroutine") {
			continue
		}
		for _, line := range strings.Split(rec, "\n") {
			if l, ok := strings.CutPrefix(line, "# labels: "); ok {
				return l
			}
		}
		return "{}"
	}
	t.Error("the calling goroutine is not in the goroutine profile")
	return ""
}

// labelsSeen is what one run of a cached function saw: its goroutine's labels and the
// "caller" label of the context it received.
type labelsSeen struct{ goroutine, ctx string }

// Every computation runs under the pprof labels of the context of the caller it
// computes for, on a pooled flight worker too (which ran other callers' computations
// before, or was started by a goroutine with other labels): single misses, Refresh,
// a NextTime background refresh (its detached context) and a batch. Each caller's
// goroutine has labels other than its context's ({"g":"outer"}), so that labels
// inherited from the goroutine that started a worker show too. An inline run (a
// context that cannot end) keeps the caller's goroutine, whose labels pprof.Do set.
func TestComputationsRunUnderTheCallersLabels(t *testing.T) {
	clk := clock.NewFake(time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC))
	seen := make(chan labelsSeen, 1)
	record := func(ctx context.Context) {
		v, _ := pprof.Label(ctx, "caller")
		seen <- labelsSeen{goroutineLabels(t), v}
	}
	st := store.Adapt(memstore.New(nil))
	f, err := cachier.Wrap(func(ctx context.Context, x int) (int, error) {
		record(ctx)
		return x, nil
	}, cachier.Name("labels/single"), cachier.WithStore(st), cachier.WithClock(clk), cachier.StaleAfter(time.Minute), cachier.NextTime(true))
	if err != nil {
		t.Fatal(err)
	}
	b, err := cachier.WrapBatch(func(ctx context.Context, xs []int) (map[int]int, error) {
		record(ctx)
		m := map[int]int{}
		for _, x := range xs {
			m[x] = x
		}
		return m, nil
	}, cachier.Name("labels/batch"), cachier.WithStore(st), cachier.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}

	// callerCtx is a cancellable context (the computation runs on a flight worker)
	// whose only label is caller=name.
	callerCtx := func(name string) context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		return pprof.WithLabels(ctx, pprof.Labels("caller", name))
	}
	check := func(what, name string) {
		t.Helper()
		got := <-seen
		if want := `{"caller":"` + name + `"}`; got.goroutine != want || got.ctx != name {
			t.Errorf("%s: the computation ran with goroutine labels %s and context label caller=%q, want %s and %q", what, got.goroutine, got.ctx, want, name)
		}
	}
	pprof.Do(context.Background(), pprof.Labels("g", "outer"), func(context.Context) {
		// Several misses in turn: the later ones run on the worker the first started.
		for i, name := range []string{"a", "b", "c"} {
			if _, err := f.Call(callerCtx(name), i); err != nil {
				t.Fatal(err)
			}
			check("miss", name)
		}
		if _, err := f.Refresh(callerCtx("refresh"), 0); err != nil {
			t.Fatal(err)
		}
		check("Refresh", "refresh")
		clk.Advance(2 * time.Minute) // stale: the next call refreshes in the background
		if _, err := f.Call(callerCtx("background"), 1); err != nil {
			t.Fatal(err)
		}
		check("background refresh", "background")
		if _, err := b.Call(callerCtx("batch"), []int{7, 8}); err != nil {
			t.Fatal(err)
		}
		check("batch", "batch")
	})
	pprof.Do(context.Background(), pprof.Labels("caller", "inline"), func(ctx context.Context) {
		if _, err := f.Call(ctx, 9); err != nil {
			t.Fatal(err)
		}
		check("inline miss", "inline")
	})
}
