package storetest

import (
	"context"
	"errors"
	"time"

	"github.com/cachier-go/cachier/store"
)

// NativeTTLHarness is implemented by a Harness whose engine expires entries itself (a
// driver that is a store.Expirer: Redis PEXPIREAT, memcached expiration, a MongoDB TTL
// index). The suite then checks the engine's own view of an entry's expiry, as its TTL
// command reports it, rather than waiting for it to pass.
type NativeTTLHarness interface {
	Harness
	// NativeTTL returns how long the engine will keep the entry for k (Redis PTTL,
	// MongoDB's expireAt minus now), or a negative duration if it keeps it forever. d
	// is a driver the harness made.
	NativeTTL(ctx context.Context, d store.Driver, k store.Key) (time.Duration, error)
}

// testExpiry checks store.Entry.ExpiresAt on every store: kept to the millisecond, a
// read past it (by the portable layer's clock) is a miss, cleanup removes an expired
// entry and listing skips it, and zero means never.
func testExpiry(e *env) {
	ns := e.ns()
	now := e.clk.Now().Truncate(time.Millisecond)
	key := func(id string) store.Key { return store.Key{Namespace: ns, ID: id} }

	e.set(key("never"), []byte("never"), now)
	if got := e.mustGet(key("never")); !got.ExpiresAt.IsZero() {
		e.t.Errorf("an entry stored without ExpiresAt came back with ExpiresAt %v, want zero", got.ExpiresAt)
	}

	later := now.Add(time.Hour)
	e.setExpiring(key("later"), []byte("later"), now, later)
	got := e.mustGet(key("later"))
	if string(got.Value) != "later" {
		e.t.Errorf("Get(later) = %s", describe(got.Value))
	}
	if !got.ExpiresAt.Equal(later) {
		e.t.Errorf("ExpiresAt came back as %v, want %v (kept to the millisecond)", got.ExpiresAt, later)
	}
	e.setExpiring(key("soon"), []byte("soon"), now, now.Add(time.Minute))
	e.wantValue(key("soon"), []byte("soon"))

	// Written already past: a miss at once, also over an entry that was there.
	e.setExpiring(key("past"), []byte("past"), now.Add(-2*time.Hour), now.Add(-time.Hour))
	e.wantMissing(key("past"))
	e.set(key("replaced"), []byte("live"), now)
	e.setExpiring(key("replaced"), []byte("dead"), now.Add(-2*time.Hour), now.Add(-time.Hour))
	e.wantMissing(key("replaced"))

	// Time passes (the portable layer's clock): past ExpiresAt is a miss.
	e.clk.Advance(time.Minute)
	e.wantMissing(key("soon"))
	e.wantValue(key("later"), []byte("later"))
	e.wantValue(key("never"), []byte("never"))
	if b, ok := e.s.(store.Batcher); ok {
		_, errs, err := b.GetMany(e.ctx, []store.Key{key("soon"), key("later")})
		if err != nil || !errors.Is(errs[0], store.ErrNotFound) || errs[1] != nil {
			e.t.Errorf("GetMany(soon, later) = %v, %v; want a miss for the expired one only", errs, err)
		}
	}

	if e.caps.NoListing {
		return
	}
	// Cleanup (DeleteBefore, even with a cut-off that removes nothing by age) removes
	// what has expired and keeps the rest; listing never shows an expired entry.
	if _, err := e.s.DeleteBefore(e.ctx, ns, now.Add(-24*time.Hour)); err != nil {
		e.t.Fatalf("DeleteBefore: %v", err)
	}
	ids := e.entryIDs(ns)
	for _, id := range []string{"never", "later"} {
		if _, ok := ids[id]; !ok {
			e.t.Errorf("cleanup removed %q, which has not expired", id)
		}
	}
	for _, id := range []string{"soon", "past", "replaced"} {
		if _, ok := ids[id]; ok {
			e.t.Errorf("Entries lists %q after cleanup, though it expired", id)
		}
	}
	// Gone from the driver too, not only hidden by the portable layer.
	for _, id := range []string{"soon", "past", "replaced"} {
		if got, err := store.Unwrap(e.s).Get(e.ctx, key(id)); err == nil {
			e.t.Errorf("the driver still holds %q (%s) after cleanup, though it expired", id, describe(got.Value))
		}
	}
}

// testNativeTTL checks that an engine that expires entries itself (store.Expirer)
// will drop an entry at its ExpiresAt, and keeps one without.
func testNativeTTL(e *env, nh NativeTTLHarness) {
	ns := e.ns()
	now := time.Now()
	d := store.Unwrap(e.s)
	exp := store.Key{Namespace: ns, ID: "expiring"}
	e.setExpiring(exp, []byte("v"), now, now.Add(time.Hour))
	if ex, ok := d.(store.Expirer); ok && !ex.ExpiresNatively() {
		// The driver learnt at its first write that this server cannot (a MongoDB
		// wire-protocol server without TTL indexes); Expiry covers the rest.
		e.t.Logf("%T: the server does not expire entries natively", d)
		return
	}
	ttl, err := nh.NativeTTL(e.ctx, d, exp)
	switch {
	case err != nil:
		e.t.Fatalf("NativeTTL: %v", err)
	case ttl <= 0 || ttl > time.Hour+2*time.Second: // engines round to seconds
		e.t.Errorf("the engine keeps an entry expiring in 1h for %v, want (0, 1h]", ttl)
	}
	never := store.Key{Namespace: ns, ID: "never"}
	e.set(never, []byte("v"), now)
	if ttl, err := nh.NativeTTL(e.ctx, d, never); err != nil || ttl >= 0 {
		e.t.Errorf("the engine keeps an entry without ExpiresAt for %v, %v; want forever (negative)", ttl, err)
	}
	// A later Set without expiry takes the expiry off.
	e.set(exp, []byte("v2"), now)
	if ttl, err := nh.NativeTTL(e.ctx, d, exp); err != nil || ttl >= 0 {
		e.t.Errorf("after a Set without ExpiresAt the engine keeps the entry for %v, %v; want forever", ttl, err)
	}
}

func (e *env) setExpiring(k store.Key, v []byte, at, expires time.Time) {
	e.t.Helper()
	if err := e.s.Set(e.ctx, k, store.Entry{Value: v, StoredAt: at, ExpiresAt: expires}); err != nil {
		e.t.Fatalf("Set(%q) expiring at %v: %v", k, expires, err)
	}
}
