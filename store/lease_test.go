package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
)

// countingSwapStore counts the driver calls the portable layer makes.
type countingSwapStore struct {
	swapMapStore
	gets, swaps int
}

func (s *countingSwapStore) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	s.gets++
	return s.swapMapStore.Get(ctx, k)
}

func (s *countingSwapStore) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	s.swaps++
	return s.swapMapStore.Swap(ctx, k, old, next)
}

// TestLeaseRoundTrips: a free lease is taken, and a held one given up, in one driver
// call each; the read-then-swap loop is only for the contended cases.
func TestLeaseRoundTrips(t *testing.T) {
	ctx := context.Background()
	d := &countingSwapStore{swapMapStore: swapMapStore{NewMapStore()}}
	st := store.Adapt(d)
	k := store.Key{Namespace: "ns", ID: "k"}
	o := store.Owner{Host: "h", PID: 1, Token: "token-a"}
	l, err := st.Acquire(ctx, k, o, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if d.gets+d.swaps != 1 {
		t.Fatalf("Acquire of a free lease: %d reads and %d swaps, want one swap", d.gets, d.swaps)
	}
	d.gets, d.swaps = 0, 0
	if err := st.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	if d.gets+d.swaps != 1 {
		t.Fatalf("Release of the held lease: %d reads and %d swaps, want one swap", d.gets, d.swaps)
	}
	// Released for real: another owner takes it at once, without a takeover.
	l2, err := st.Acquire(ctx, k, store.Owner{Host: "h", PID: 2, Token: "token-b"}, time.Minute)
	if err != nil || l2.TakenOver {
		t.Fatalf("Acquire after Release = %+v, %v", l2, err)
	}
	// A stale copy of the first lease releases nothing.
	if err := st.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Acquire(ctx, k, o, time.Minute); err == nil {
		t.Fatal("a stale Release freed another owner's lease")
	}
}
