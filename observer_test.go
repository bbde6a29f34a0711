package cachier_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

type ctxKey struct{}

// recorder is an Observer that keeps what it saw.
type recorder struct {
	mu      sync.Mutex
	started []cachier.CallInfo
	ended   []cachier.Outcome
}

func (r *recorder) CallStarted(ctx context.Context, c cachier.CallInfo) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, c)
	return context.WithValue(ctx, ctxKey{}, "span")
}

func (r *recorder) CallEnded(ctx context.Context, o cachier.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Value(ctxKey{}) != "span" {
		o.Err = errors.New("CallEnded did not get CallStarted's context")
	}
	r.ended = append(r.ended, o)
}

func TestObserver(t *testing.T) {
	rec := &recorder{}
	clock := newClock()
	boom := errors.New("boom")
	fn := func(ctx context.Context, x int) (int, error) {
		if ctx.Value(ctxKey{}) != "span" {
			t.Error("fn did not run with the observer's context")
		}
		if x < 0 {
			return 0, boom
		}
		return x, nil
	}
	f, err := cachier.Wrap(fn, cachier.Name("observed"), cachier.WithStore(memstore.New(nil)), cachier.WithObserver(rec),
		cachier.WithClock(clock), cachier.StaleAfter(time.Minute), cachier.NextTime(true))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f.Call(ctx, 1) // miss, computed
	f.Call(ctx, 1) // hit
	clock.Advance(time.Hour)
	f.Call(ctx, 1)                      // stale hit
	f.Call(ctx, 2, cachier.SkipCache()) // skipped
	_, callErr := f.Call(ctx, -1)       // miss, failed
	waitFor(t, "the refresh", func() bool { return f.Stats().Refreshes == 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []cachier.Result{cachier.ResultMiss, cachier.ResultHit, cachier.ResultStaleHit, cachier.ResultSkipped, cachier.ResultMiss}
	if len(rec.ended) != len(want) || len(rec.started) != len(want) {
		t.Fatalf("started %d, ended %d calls; want %d", len(rec.started), len(rec.ended), len(want))
	}
	for i, o := range rec.ended {
		if o.Result != want[i] {
			t.Errorf("call %d: result %v, want %v", i, o.Result, want[i])
		}
	}
	if !rec.ended[0].Computed || rec.ended[1].Computed {
		t.Errorf("Computed: %+v", rec.ended)
	}
	if !errors.Is(rec.ended[4].Err, boom) || !errors.Is(callErr, boom) {
		t.Errorf("the failed call's outcome: %v", rec.ended[4].Err)
	}
	for i, o := range rec.ended[:4] {
		if o.Err != nil {
			t.Errorf("call %d: %v", i, o.Err)
		}
	}
	k, _ := f.Key(1)
	if c := rec.started[0]; c.Namespace != "observed" || c.KeyID != k.ID || c.Store != "*memstore.Store" {
		t.Errorf("CallInfo %+v", c)
	}
}
