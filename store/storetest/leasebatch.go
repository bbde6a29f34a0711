package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

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

// testLeaseBatchTakeover checks that store.AcquireMany keeps Acquire's rule for leases
// already there: another owner's expired lease is taken over and says so
// (TakenOver), a live one is reported held with its holder and expiry, the owner's
// own lease is taken again without being a takeover, and a free key is not one
// either.
func testLeaseBatchTakeover(e *env) {
	ns := e.ns()
	var ks []store.Key
	for i := range 6 {
		ks = append(ks, store.Key{Namespace: ns, ID: fmt.Sprintf("k%02d", i)})
	}
	a, b, c := owner("a"), owner("b"), owner("c")
	short := e.acquire(ks[1], a, time.Second)
	e.acquire(ks[4], a, time.Second)
	e.acquire(ks[5], b, time.Second)
	e.expire(short)
	live := e.acquire(ks[2], a, longTTL)
	ls, errs, err := store.AcquireMany(e.ctx, e.s, ks, b, longTTL)
	if err != nil || len(ls) != len(ks) || len(errs) != len(ks) {
		e.t.Fatalf("AcquireMany = %d leases, %d errors, %v; want %d each and nil", len(ls), len(errs), err, len(ks))
	}
	now := e.clk.Now()
	var mine []store.Lease
	for i, k := range ks {
		if i == 2 {
			var he *store.HeldError
			if !errors.As(errs[i], &he) {
				e.t.Errorf("AcquireMany %s, live lease of %s: %v; want a *store.HeldError", k, a, errs[i])
				continue
			}
			if he.Holder.Owner != a || !he.Holder.ExpiresAt.Equal(live.ExpiresAt) {
				e.t.Errorf("AcquireMany %s: held by %s until %v, want %s until %v", k, he.Holder.Owner, he.Holder.ExpiresAt, a, live.ExpiresAt)
			}
			continue
		}
		if errs[i] != nil {
			e.t.Errorf("AcquireMany %s: %v", k, errs[i])
			continue
		}
		mine = append(mine, ls[i])
		takeover := i == 1 || i == 4 // a's expired leases; 5 is b's own
		if ls[i].Key != k || ls[i].Owner != b || !ls[i].ExpiresAt.Equal(now.Add(longTTL)) || ls[i].TakenOver != takeover {
			e.t.Errorf("AcquireMany %s: lease %+v; want owner %s until %v, TakenOver %v", k, ls[i], b, now.Add(longTTL), takeover)
		}
		e.wantHeld(k, c)
	}
	if _, err := store.ReleaseMany(e.ctx, e.s, mine); err != nil {
		e.t.Fatalf("ReleaseMany: %v", err)
	}
	for _, l := range mine {
		e.wantFree(l.Key, c)
	}
}

// testSwapMany checks a store.SwapBatcher driver's SwapMany against Swap's rule, key
// by key and in order: create only where there is no record, delete and replace only
// where the record is old, a key repeated in one batch seeing the earlier swap, and a
// batch that mixes kinds.
func testSwapMany(e *env) {
	sb := store.Unwrap(e.s).(store.SwapBatcher)
	ns := e.ns()
	var ks []store.Key
	for i := range 6 {
		ks = append(ks, store.Key{Namespace: ns, ID: fmt.Sprintf("k%02d", i)})
	}
	at := e.clk.Now()
	ent := func(v string) *store.Entry { return &store.Entry{Value: []byte(v), StoredAt: at} }
	e.set(ks[1], []byte("x"), at)
	e.set(ks[3], []byte("y"), at)
	swap := func(what string, ks []store.Key, olds [][]byte, nexts []*store.Entry, want ...bool) {
		e.t.Helper()
		got, err := sb.SwapMany(e.ctx, ks, olds, nexts)
		if err != nil || !slices.Equal(got, want) {
			e.t.Errorf("SwapMany (%s) = %v, %v; want %v", what, got, err, want)
		}
	}
	swap("creates", []store.Key{ks[0], ks[1], ks[2]}, make([][]byte, 3), []*store.Entry{ent("a0"), ent("a1"), ent("a2")},
		true, false, true)
	e.wantValue(ks[0], []byte("a0"))
	e.wantValue(ks[1], []byte("x"))
	e.wantValue(ks[2], []byte("a2"))
	swap("deletes", []store.Key{ks[0], ks[1], ks[2], ks[3]}, [][]byte{[]byte("a0"), []byte("not x"), []byte("a2"), []byte("y")}, make([]*store.Entry, 4),
		true, false, true, true)
	e.wantMissing(ks[0])
	e.wantValue(ks[1], []byte("x"))
	e.wantMissing(ks[2])
	e.wantMissing(ks[3])
	swap("a key twice", []store.Key{ks[4], ks[4]}, make([][]byte, 2), []*store.Entry{ent("b1"), ent("b2")},
		true, false)
	e.wantValue(ks[4], []byte("b1"))
	swap("a key deleted twice", []store.Key{ks[4], ks[4]}, [][]byte{[]byte("b1"), []byte("b1")}, make([]*store.Entry, 2),
		true, false)
	e.wantMissing(ks[4])
	swap("mixed", []store.Key{ks[5], ks[5], ks[1]}, [][]byte{nil, []byte("c"), []byte("x")}, []*store.Entry{ent("c"), ent("d"), nil},
		true, true, true)
	e.wantValue(ks[5], []byte("d"))
	e.wantMissing(ks[1])
	if _, err := sb.SwapMany(e.ctx, ks[:2], make([][]byte, 1), make([]*store.Entry, 2)); err == nil {
		e.t.Error("SwapMany of 2 keys and 1 old value: nil error")
	}
	cctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := sb.SwapMany(cctx, ks[:2], make([][]byte, 2), []*store.Entry{ent("e"), ent("e")}); err == nil {
		e.t.Error("SwapMany with a cancelled context: nil error")
	}
}
