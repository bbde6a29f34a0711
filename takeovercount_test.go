package cachier_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// claimMap is a driver whose first read of a call claims natively (GetOrCreate,
// GetAndCreate and Swap under one lock), with a hook on each Swap that deletes a
// record (a Release).
type claimMap struct {
	mu       sync.Mutex
	m        map[store.Key]store.Entry
	released func()
}

func (d *claimMap) Get(_ context.Context, k store.Key) (store.Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[k]
	if !ok {
		return store.Entry{}, fmt.Errorf("claimMap: %s: %w", k, store.ErrNotFound)
	}
	e.Value = append([]byte{}, e.Value...)
	return e, nil
}

func (d *claimMap) Set(_ context.Context, k store.Key, e store.Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[k] = e
	return nil
}

func (d *claimMap) Delete(_ context.Context, k store.Key) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, k)
	return nil
}

func (d *claimMap) Close() error { return nil }

func (d *claimMap) Swap(_ context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	d.mu.Lock()
	cur, ok := d.m[k]
	if ok != (old != nil) || (ok && string(cur.Value) != string(old)) {
		d.mu.Unlock()
		return false, nil
	}
	if next == nil {
		delete(d.m, k)
	} else {
		d.m[k] = *next
	}
	released := d.released
	d.mu.Unlock()
	if next == nil && old != nil && released != nil {
		released()
	}
	return true, nil
}

func (d *claimMap) create(k store.Key, also []store.Key, rk store.Key, rec store.Entry, ifMissing bool) store.GetAndCreateResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	var r store.GetAndCreateResult
	e, found := d.m[k]
	if found {
		r.Entry = store.Entry{Value: append([]byte{}, e.Value...), StoredAt: e.StoredAt, ExpiresAt: e.ExpiresAt}
	} else {
		r.GetErr = fmt.Errorf("claimMap: %s: %w", k, store.ErrNotFound)
	}
	r.Also = make([][]byte, len(also))
	for i, a := range also {
		if v, ok := d.m[a]; ok {
			r.Also[i] = append([]byte{}, v.Value...)
		}
	}
	if found && ifMissing {
		return r
	}
	if cur, ok := d.m[rk]; ok {
		r.Cur = append([]byte{}, cur.Value...)
		return r
	}
	d.m[rk] = rec
	r.Cur, r.Created = append([]byte{}, rec.Value...), true
	return r
}

func (d *claimMap) GetAndCreate(_ context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	return d.create(k, also, rk, rec, false), nil
}

func (d *claimMap) GetOrCreate(_ context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	return d.create(k, also, rk, rec, true), nil
}

// TestTakeoverByJoinerIsCounted: a caller whose first read takes over a dead holder's
// expired lease, and then joins this process's computation under way (giving the
// lease up to it), still counts the takeover: the computation then takes a free
// lease, which reports none. TestKilledHolderIsTakenOver/postgres saw 0 takeovers
// under load (one computation, after the dead holder's lease ran out).
func TestTakeoverByJoinerIsCounted(t *testing.T) {
	ctx := t.Context()
	// The store's clock runs the leases; the Func's, frozen, keeps the waiting caller
	// asleep until the test wakes it.
	storeClk, funcClk := clock.NewFake(t0), clock.NewFake(t0)
	released := make(chan struct{}, 8)
	d := &claimMap{m: map[store.Key]store.Entry{}, released: func() { released <- struct{}{} }}
	st := store.Adapt(d, store.WithClock(storeClk))
	if !st.(store.Claimer).ClaimsNatively() {
		t.Fatal("the driver does not claim natively")
	}
	var computations atomic.Int64
	f, err := cachier.Wrap(func(context.Context, int) (int, error) { computations.Add(1); return 7, nil },
		cachier.Name("takeover/joiner"), cachier.WithStore(st), cachier.WithClock(funcClk),
		cachier.WithKey(func(int) (string, error) { return "x", nil }), cachier.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	k := store.Key{Namespace: "takeover/joiner", ID: "x"}
	dead := store.Owner{Host: "gone", PID: 1, Token: "dead-holder-token"}
	if _, err := st.Acquire(ctx, k, dead, time.Second); err != nil {
		t.Fatal(err)
	}
	if n := funcClk.Timers(); n != 0 {
		t.Fatalf("%d timers armed before any call", n)
	}
	type res struct {
		v   int
		err error
	}
	results := make(chan res, 2)
	call := func() {
		v, err := f.Call(context.Background(), 1)
		results <- res{v, err}
	}
	// The leader: the dead holder's lease is live, so it waits (a timer on the
	// Func's clock).
	go call()
	if err := funcClk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// The lease runs out; the next caller's first read takes it over, joins the
	// leader's computation and releases the lease.
	storeClk.Advance(2 * time.Second)
	go call()
	select {
	case <-released:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	// The leader wakes, takes the free lease and computes.
	funcClk.Advance(time.Second)
	for range 2 {
		if r := <-results; r.err != nil || r.v != 7 {
			t.Fatalf("Call = %v, %v", r.v, r.err)
		}
	}
	if n := computations.Load(); n != 1 {
		t.Fatalf("%d computations, want 1", n)
	}
	if n := f.Stats().LeaseTakeovers; n != 1 {
		t.Fatalf("LeaseTakeovers = %d, want 1 (the joiner's takeover)", n)
	}
}
