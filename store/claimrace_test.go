package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// claimTripStore is tripMapStore with GetOrCreate (so ReadOrClaim is native) and a
// hook that runs once, before the first Swap of a lease record: there another caller
// acts between a claim's read of the dead holder's lease and its takeover swap.
type claimTripStore struct {
	tripMapStore
	beforeSwap func()
}

func (s *claimTripStore) GetOrCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	s.mu.Lock()
	_, found := s.m[k]
	s.mu.Unlock()
	if !found {
		return s.GetAndCreate(ctx, k, also, rk, rec)
	}
	r, err := s.GetAndCreate(ctx, k, also, store.Key{Namespace: rk.Namespace, ID: rk.ID + "/unused"}, rec)
	r.Cur, r.Created = nil, false
	return r, err
}

func (s *claimTripStore) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	if f := s.beforeSwap; f != nil && old != nil && next != nil {
		s.beforeSwap = nil
		f()
	}
	return s.tripMapStore.Swap(ctx, k, old, next)
}

// swapOnlyStore is the same over Swap alone (ReadOrAcquire reads, then swaps).
type swapOnlyStore struct {
	swapMapStore
	beforeSwap func()
}

func (s *swapOnlyStore) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	if f := s.beforeSwap; f != nil && old != nil && next != nil {
		s.beforeSwap = nil
		f()
	}
	return s.swapMapStore.Swap(ctx, k, old, next)
}

// TestClaimAfterLostTakeoverSeesEntry: a claim that reads a dead holder's expired
// lease and k's absence, then loses the takeover swap to a caller that takes the
// lease over, stores the entry and releases the lease before the claim goes on, must
// not come back with the lease and without that entry: its caller would compute a
// second time (TestKilledHolderIsTakenOver/postgres under load: computations
// [A,B,B], one process's goroutine claiming after its own flight had stored the
// result). ReadOrClaim (native, over GetOrCreate), ReadOrAcquire over GetAndCreate,
// and ReadOrAcquire over Swap alone.
func TestClaimAfterLostTakeoverSeesEntry(t *testing.T) {
	type hooked struct {
		d   store.Driver
		set func(func())
	}
	drivers := map[string]func() hooked{
		"GetOrCreate": func() hooked {
			d := &claimTripStore{tripMapStore: tripMapStore{swapMapStore{NewMapStore()}}}
			return hooked{d, func(f func()) { d.beforeSwap = f }}
		},
		"Swap": func() hooked {
			d := &swapOnlyStore{swapMapStore: swapMapStore{NewMapStore()}}
			return hooked{d, func(f func()) { d.beforeSwap = f }}
		},
	}
	calls := map[string]func(st store.Store) func(context.Context, store.Key, []string, store.Owner, time.Duration) (store.Claim, error){
		"ReadOrClaim": func(st store.Store) func(context.Context, store.Key, []string, store.Owner, time.Duration) (store.Claim, error) {
			return st.(store.Claimer).ReadOrClaim
		},
		"ReadOrAcquire": func(st store.Store) func(context.Context, store.Key, []string, store.Owner, time.Duration) (store.Claim, error) {
			return st.(store.MissPath).ReadOrAcquire
		},
	}
	for dname, newDriver := range drivers {
		for cname, call := range calls {
			t.Run(dname+"/"+cname, func(t *testing.T) {
				ctx := context.Background()
				clk := clock.NewFake(time.Unix(1_000_000, 0))
				h := newDriver()
				st := store.Adapt(h.d, store.WithClock(clk))
				if cname == "ReadOrClaim" && dname == "GetOrCreate" && !st.(store.Claimer).ClaimsNatively() {
					t.Fatal("the driver does not claim natively")
				}
				k := store.Key{Namespace: "ns", ID: "k"}
				owner := func(n int) store.Owner {
					return store.Owner{Host: "h", PID: n, Token: fmt.Sprintf("token-%d", n)}
				}
				const ttl = time.Second
				// The dead holder: its lease is there, expired.
				if _, err := st.Acquire(ctx, k, owner(1), ttl); err != nil {
					t.Fatal(err)
				}
				clk.Advance(2 * ttl)
				// Between the claim's read and its swap, another caller takes over,
				// stores the entry and releases the lease.
				stored := false
				h.set(func() {
					l, err := st.Acquire(ctx, k, owner(2), ttl)
					if err != nil || !l.TakenOver {
						t.Errorf("the other caller's takeover: %+v, %v", l, err)
						return
					}
					if _, err := st.(store.MissPath).WriteAndRelease(ctx, k, store.Entry{Value: []byte("v"), StoredAt: clk.Now()}, l, nil); err != nil {
						t.Error(err)
						return
					}
					stored = true
				})
				c, err := call(st)(ctx, k, nil, owner(3), ttl)
				if err != nil {
					t.Fatal(err)
				}
				if !stored {
					t.Fatal("the claim never tried to take the lease over")
				}
				if c.LeaseErr == nil && c.Err != nil {
					t.Fatalf("the claim took the lease (%+v) and reports no entry (%v), though one was stored and the lease released before it took it: its caller computes again", c.Lease, c.Err)
				}
				if c.LeaseErr == nil && c.Lease.TakenOver {
					t.Errorf("the claim took a released lease and reports a takeover")
				}
				if c.Err != nil || string(c.Entry.Value) != "v" {
					t.Errorf("the claim reports no entry (%v, %q), though one was stored before it took the lease", c.Err, c.Entry.Value)
				}
				if c.LeaseErr != nil && !errors.Is(c.LeaseErr, store.ErrNotClaimed) {
					t.Errorf("LeaseErr = %v, want nil (the lease is free) or ErrNotClaimed", c.LeaseErr)
				}
			})
		}
	}
}
