package storetest

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cachier-go/cachier/store"
)

func testLeaseAcquire(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	o := owner("a")
	before := time.Now()
	l := e.acquire(k, o, longTTL)
	after := time.Now()
	if l.Key != k {
		e.t.Errorf("Acquire: lease Key = %+v, want %+v", l.Key, k)
	}
	if l.Owner != o {
		e.t.Errorf("Acquire: lease Owner = %+v, want %+v", l.Owner, o)
	}
	// The expiry is about ttl from now. Allow for a server clock that is a little off.
	if lo, hi := before.Add(longTTL/2), after.Add(2*longTTL); l.ExpiresAt.Before(lo) || l.ExpiresAt.After(hi) {
		e.t.Errorf("Acquire with ttl %s at %s: ExpiresAt = %s, want about %s",
			longTTL, before.Format(time.RFC3339Nano), l.ExpiresAt.Format(time.RFC3339Nano), before.Add(longTTL))
	}
	if err := e.s.Release(e.ctx, l); err != nil {
		e.t.Errorf("Release: %v", err)
	}
	// Acquiring does not create an entry.
	e.wantMissing(k)
}

func testLeaseHeld(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	a, b := owner("a"), owner("b")
	e.acquire(k, a, longTTL)
	l, err := e.s.Acquire(e.ctx, k, b, longTTL)
	if !errors.Is(err, store.ErrLeaseHeld) {
		e.t.Fatalf("second Acquire by another owner = %+v, %v; want an error matching store.ErrLeaseHeld", l, err)
	}
	var held *store.HeldError
	if !errors.As(err, &held) {
		e.t.Fatalf("second Acquire: %v (%T) is not a *store.HeldError", err, err)
	}
	if tok := held.Holder.Owner.Token; tok != "" && tok != a.Token {
		e.t.Errorf("HeldError names holder token %q, want %q (or empty if the store cannot tell)", tok, a.Token)
	}
	if hk := held.Holder.Key; hk != (store.Key{}) && hk != k {
		e.t.Errorf("HeldError names key %+v, want %+v (or zero)", hk, k)
	}
	if held.Holder.Owner.Host != "" && held.Holder.Owner != a {
		e.t.Errorf("HeldError names holder %+v, want %+v (or zero)", held.Holder.Owner, a)
	}
	if held.Error() == "" {
		e.t.Error("HeldError has an empty message")
	}
	// Still held for everyone else; other keys are free.
	e.wantHeld(k, owner("c"))
	e.wantFree(store.Key{Namespace: ns, ID: "other"}, b)
}

func testLeaseRenew(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	a := owner("a")
	l := e.acquire(k, a, longTTL)
	r, err := e.s.Renew(e.ctx, l, 10*longTTL)
	if err != nil {
		e.t.Fatalf("Renew by the owner: %v", err)
	}
	if !r.ExpiresAt.After(l.ExpiresAt) {
		e.t.Errorf("Renew to %s: ExpiresAt = %s, not after the first %s", 10*longTTL, r.ExpiresAt, l.ExpiresAt)
	}
	if r.Key != k || r.Owner != a {
		e.t.Errorf("Renew returned %+v, want key %+v owner %+v", r, k, a)
	}
	e.wantHeld(k, owner("b"))

	// A wrong token is not the owner, even with the same host and pid.
	wrong := l
	wrong.Owner.Token = "not-" + a.Token
	if got, err := e.s.Renew(e.ctx, wrong, longTTL); !errors.Is(err, store.ErrLeaseLost) {
		e.t.Errorf("Renew with a wrong token = %+v, %v; want an error matching store.ErrLeaseLost", got, err)
	}
	// Renewing a lease nobody holds is lost, too.
	ghost := store.Lease{Key: store.Key{Namespace: ns, ID: "never"}, Owner: a, ExpiresAt: time.Now().Add(time.Hour)}
	if got, err := e.s.Renew(e.ctx, ghost, longTTL); !errors.Is(err, store.ErrLeaseLost) {
		e.t.Errorf("Renew of a lease never acquired = %+v, %v; want an error matching store.ErrLeaseLost", got, err)
	}
	// The owner's lease survived the failed renewals, and the renewed lease releases.
	e.wantHeld(k, owner("b"))
	if err := e.s.Release(e.ctx, r); err != nil {
		e.t.Errorf("Release: %v", err)
	}
	e.wantFree(k, owner("b"))
	// After release, renewing is lost.
	if got, err := e.s.Renew(e.ctx, r, longTTL); !errors.Is(err, store.ErrLeaseLost) {
		e.t.Errorf("Renew after Release = %+v, %v; want an error matching store.ErrLeaseLost", got, err)
	}
}

func testLeaseRelease(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	a, b := owner("a"), owner("b")
	l := e.acquire(k, a, longTTL)

	// A non-owner's release does nothing.
	fake := store.Lease{Key: k, Owner: b, ExpiresAt: l.ExpiresAt}
	if err := e.s.Release(e.ctx, fake); err != nil {
		e.t.Errorf("Release by a non-owner: %v; want nil (a no-op)", err)
	}
	wrongToken := l
	wrongToken.Owner.Token += "x"
	if err := e.s.Release(e.ctx, wrongToken); err != nil {
		e.t.Errorf("Release with a wrong token: %v; want nil (a no-op)", err)
	}
	e.wantHeld(k, b)

	if err := e.s.Release(e.ctx, l); err != nil {
		e.t.Fatalf("Release by the owner: %v", err)
	}
	lb := e.acquire(k, b, longTTL)
	// Releasing twice, or a lease nobody holds, is fine.
	if err := e.s.Release(e.ctx, l); err != nil {
		e.t.Errorf("Release twice: %v; want nil", err)
	}
	e.wantHeld(k, a)
	if err := e.s.Release(e.ctx, lb); err != nil {
		e.t.Errorf("Release: %v", err)
	}
	if err := e.s.Release(e.ctx, lb); err != nil {
		e.t.Errorf("Release of a free key: %v; want nil", err)
	}
}

func testLeaseExpiry(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	a, b := owner("a"), owner("b")
	old := e.acquire(k, a, 300*time.Millisecond)
	e.expire(old)

	taken, err := e.s.Acquire(e.ctx, k, b, longTTL)
	if err != nil {
		e.t.Fatalf("Acquire after the lease expired: %v; want nil", err)
	}
	if taken.Owner != b {
		e.t.Errorf("takeover lease Owner = %+v, want %+v", taken.Owner, b)
	}
	// The old owner has lost it: renewing fails and releasing leaves the new lease.
	if got, err := e.s.Renew(e.ctx, old, longTTL); !errors.Is(err, store.ErrLeaseLost) {
		e.t.Errorf("Renew by the old owner after takeover = %+v, %v; want an error matching store.ErrLeaseLost", got, err)
	}
	if err := e.s.Release(e.ctx, old); err != nil {
		e.t.Errorf("Release by the old owner after takeover: %v; want nil (a no-op)", err)
	}
	e.wantHeld(k, a)
	if _, err := e.s.Renew(e.ctx, taken, longTTL); err != nil {
		e.t.Errorf("Renew by the new owner: %v", err)
	}
}

func testLeases(e *env) {
	e.skipIfNoListing()
	ns, other := e.ns(), e.ns()
	if got := e.leaseIDs(ns); len(got) != 0 {
		e.t.Errorf("Leases of a new namespace = %q, want none", sortedKeys(got))
	}
	owners := map[string]store.Owner{"a": owner("a"), "b/c": owner("b"), "d e": owner("d")}
	held := map[string]store.Lease{}
	for id, o := range owners {
		held[id] = e.acquire(store.Key{Namespace: ns, ID: id}, o, longTTL)
	}
	e.acquire(store.Key{Namespace: other, ID: "z"}, owner("z"), longTTL)
	e.set(store.Key{Namespace: ns, ID: "entry-only"}, []byte("v"), time.Now())

	got := e.leaseIDs(ns)
	if !slices.Equal(sortedKeys(got), sortedKeys(owners)) {
		e.t.Errorf("Leases = %q, want %q", sortedKeys(got), sortedKeys(owners))
	}
	for id, l := range got {
		if o, ok := owners[id]; ok && l.Owner != o {
			e.t.Errorf("Leases: %q owner = %+v, want %+v", id, l.Owner, o)
		}
		if l.ExpiresAt.Before(time.Now()) {
			e.t.Errorf("Leases: %q ExpiresAt %s is in the past", id, l.ExpiresAt)
		}
	}
	if err := e.s.Release(e.ctx, held["a"]); err != nil {
		e.t.Fatal(err)
	}
	delete(owners, "a")
	if got := e.leaseIDs(ns); !slices.Equal(sortedKeys(got), sortedKeys(owners)) {
		e.t.Errorf("Leases after Release = %q, want %q", sortedKeys(got), sortedKeys(owners))
	}

	// An expired lease is not listed.
	short := store.Key{Namespace: ns, ID: "short"}
	e.expire(e.acquire(short, owner("s"), 200*time.Millisecond))
	if _, listed := e.leaseIDs(ns)["short"]; listed {
		e.t.Fatalf("an expired lease was still listed")
	}
}

func testReleaseAll(e *env) {
	ns, other := e.ns(), e.ns()
	var old []store.Lease
	for i := range 3 {
		old = append(old, e.acquire(store.Key{Namespace: ns, ID: fmt.Sprint("k", i)}, owner(fmt.Sprint("o", i)), longTTL))
	}
	ko := store.Key{Namespace: other, ID: "k0"}
	e.acquire(ko, owner("other"), longTTL)
	ke := store.Key{Namespace: ns, ID: "k0"}
	e.set(ke, []byte("entry"), time.Now())

	n, err := e.s.ReleaseAll(e.ctx, ns)
	if !e.clears && e.scope == store.LeasesShared {
		if !errors.Is(err, errors.ErrUnsupported) {
			e.t.Fatalf("ReleaseAll on a driver that cannot list = %d, %v; want an error matching errors.ErrUnsupported", n, err)
		}
		return
	}
	if err != nil {
		e.t.Fatalf("ReleaseAll: %v", err)
	}
	if !e.caps.NoListing && n != 3 {
		e.t.Errorf("ReleaseAll = %d, want 3", n)
	}
	for i := range 3 {
		e.wantFree(store.Key{Namespace: ns, ID: fmt.Sprint("k", i)}, owner("new"))
	}
	for _, l := range old {
		if got, err := e.s.Renew(e.ctx, l, longTTL); !errors.Is(err, store.ErrLeaseLost) {
			e.t.Errorf("Renew after ReleaseAll = %+v, %v; want an error matching store.ErrLeaseLost", got, err)
		}
	}
	e.wantHeld(ko, owner("new")) // other namespaces keep theirs
	e.wantValue(ke, []byte("entry"))

	n, err = e.s.ReleaseAll(e.ctx, ns)
	if err != nil || (!e.caps.NoListing && n != 0) {
		e.t.Errorf("ReleaseAll of an empty namespace = %d, %v; want 0, nil", n, err)
	}
}

func testLeaseAndEntryIndependent(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	a, b := owner("a"), owner("b")
	l := e.acquire(k, a, longTTL)
	e.set(k, []byte("computed"), time.Now())
	e.wantHeld(k, b) // Set does not release
	if err := e.s.Delete(e.ctx, k); err != nil {
		e.t.Fatal(err)
	}
	e.wantHeld(k, b) // Delete does not release
	e.set(k, []byte("computed"), time.Now())
	if _, err := e.s.Renew(e.ctx, l, longTTL); err != nil {
		e.t.Errorf("Renew after Set: %v", err)
	}
	if err := e.s.Release(e.ctx, l); err != nil {
		e.t.Fatal(err)
	}
	e.wantValue(k, []byte("computed")) // Release does not delete
}

// testLeaseEmptyToken checks that an owner without a token is refused: the token is
// what tells one acquisition from another, so an empty one would let two callers both
// believe they hold the same lease.
func testLeaseEmptyToken(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	anon := store.Owner{Host: "h", PID: 1}
	if l, err := e.s.Acquire(e.ctx, k, anon, longTTL); err == nil {
		e.t.Fatalf("Acquire with an empty token = %+v, nil; want an error", l)
	}
	// It took nothing: a real owner gets the lease.
	e.acquire(k, owner("a"), longTTL)
	if _, err := e.s.Renew(e.ctx, store.Lease{Key: k, Owner: anon}, longTTL); err == nil {
		e.t.Error("Renew with an empty token returned nil; want an error")
	}
	if err := e.s.Release(e.ctx, store.Lease{Key: k, Owner: anon}); err == nil {
		e.t.Error("Release with an empty token returned nil; want an error")
	}
	e.wantHeld(k, owner("b"))
}
