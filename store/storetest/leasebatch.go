package storetest

import (
	"context"
	"errors"
	"fmt"

	"github.com/cachier-go/cachier/store"
)

// testLeaseBatch checks store.AcquireMany and store.ReleaseMany (one round trip over
// a store.SwapBatcher driver, one lease at a time otherwise): free keys are taken,
// keys another owner holds are reported held with a *store.HeldError, a key the
// owner already holds is taken again, and releasing frees exactly the owner's leases,
// a renewed one (whose record no longer matches the lease released) included.
func testLeaseBatch(e *env) {
	ns := e.ns()
	var ks []store.Key
	for i := range 10 {
		ks = append(ks, store.Key{Namespace: ns, ID: fmt.Sprintf("k%02d", i)})
	}
	a, b, c := owner("a"), owner("b"), owner("c")
	held := map[int]bool{3: true, 7: true}
	for i := range held {
		e.acquire(ks[i], a, longTTL)
	}
	e.acquire(ks[1], b, longTTL) // b's own: taken again
	ls, errs, err := store.AcquireMany(e.ctx, e.s, ks, b, longTTL)
	if err != nil || len(ls) != len(ks) || len(errs) != len(ks) {
		e.t.Fatalf("AcquireMany = %d leases, %d errors, %v; want %d each and nil", len(ls), len(errs), err, len(ks))
	}
	var mine []store.Lease
	for i, k := range ks {
		if held[i] {
			var he *store.HeldError
			if !errors.Is(errs[i], store.ErrLeaseHeld) || !errors.As(errs[i], &he) {
				e.t.Errorf("AcquireMany %s, held by another owner: %v; want a *store.HeldError", k, errs[i])
			}
			e.wantHeld(k, c)
			continue
		}
		if errs[i] != nil {
			e.t.Fatalf("AcquireMany %s, free: %v", k, errs[i])
		}
		if ls[i].Key != k || ls[i].Owner != b {
			e.t.Errorf("AcquireMany %s: lease %+v, want key %+v owner %+v", k, ls[i], k, b)
		}
		e.wantHeld(k, c)
		mine = append(mine, ls[i])
	}
	// A renewed lease is released by the lease as it was before the renewal, too.
	if _, err := e.s.Renew(e.ctx, mine[0], 2*longTTL); err != nil {
		e.t.Fatalf("Renew: %v", err)
	}
	// Another owner's lease in the batch is left alone.
	fake := store.Lease{Key: ks[3], Owner: b, ExpiresAt: mine[0].ExpiresAt}
	rerrs, err := store.ReleaseMany(e.ctx, e.s, append(mine, fake))
	if err != nil || len(rerrs) != len(mine)+1 {
		e.t.Fatalf("ReleaseMany = %d errors, %v; want %d and nil", len(rerrs), err, len(mine)+1)
	}
	for i, err := range rerrs {
		if err != nil {
			e.t.Errorf("ReleaseMany %d: %v", i, err)
		}
	}
	for i, k := range ks {
		if held[i] {
			e.wantHeld(k, c)
		} else {
			e.wantFree(k, c)
		}
	}
	// Whole-call failures: a cancelled context, a bad key.
	cctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, _, err := store.AcquireMany(cctx, e.s, ks, b, longTTL); err == nil {
		e.t.Error("AcquireMany with a cancelled context: nil error")
	}
	if _, _, err := store.AcquireMany(e.ctx, e.s, []store.Key{ks[0], {Namespace: ns}}, b, longTTL); err == nil {
		e.t.Error("AcquireMany of an empty key ID: nil error")
	}
}
