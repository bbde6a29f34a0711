package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cachier-go/cachier/store"
)

// The two calls of a miss (store.MissPath) run for every driver: over the driver's
// ReadOrAcquirer and WriteAndReleaser where it has them, over the fallbacks
// otherwise. The driver's own GetAndCreate and SetAndDelete are tested on their own
// when it declares them.

func (e *env) miss() store.MissPath {
	e.t.Helper()
	m, ok := e.s.(store.MissPath)
	if !ok {
		e.t.Fatalf("the adapted store %T is not a store.MissPath", e.s)
	}
	return m
}

// counterName returns a counter name unique to this test.
func (e *env) counterName(what string) string {
	return "storetest/" + what + "/" + randHex(8)
}

func (e *env) bump(name string) uint64 {
	e.t.Helper()
	v, err := e.s.(store.Versioner).Bump(e.ctx, name)
	if err != nil {
		e.t.Fatalf("Bump(%q): %v", name, err)
	}
	return v
}

func testReadOrAcquire(e *env) {
	m := e.miss()
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	bumped, never := e.counterName("bumped"), e.counterName("never")
	v := e.bump(bumped)
	a, b := owner("a"), owner("b")

	// A miss on a free key: not found, the counters, and the lease.
	c, err := m.ReadOrAcquire(e.ctx, k, []string{bumped, never}, a, longTTL)
	if err != nil {
		e.t.Fatalf("ReadOrAcquire of a missing key: %v", err)
	}
	if !errors.Is(c.Err, store.ErrNotFound) {
		e.t.Errorf("ReadOrAcquire of a missing key: Err = %v, want ErrNotFound", c.Err)
	}
	if c.VersionsErr != nil || len(c.Versions) != 2 || c.Versions[0] != v || c.Versions[1] != 0 {
		e.t.Errorf("ReadOrAcquire: Versions = %v, %v; want [%d 0]", c.Versions, c.VersionsErr, v)
	}
	if c.LeaseErr != nil {
		e.t.Fatalf("ReadOrAcquire of a free lease: %v", c.LeaseErr)
	}
	if c.Lease.Key != k || c.Lease.Owner != a || !c.Lease.ExpiresAt.After(time.Now().Add(-time.Second)) {
		e.t.Errorf("ReadOrAcquire: Lease = %+v, want key %s owner %s", c.Lease, k, a)
	}
	e.wantHeld(k, b)
	e.wantMissing(k) // taking the lease writes no entry

	// Another owner reads the entry and learns who holds the lease.
	at := time.UnixMilli(1_700_000_000_000)
	e.set(k, []byte("value"), at)
	c2, err := m.ReadOrAcquire(e.ctx, k, nil, b, longTTL)
	if err != nil {
		e.t.Fatalf("ReadOrAcquire by another owner: %v", err)
	}
	if c2.Err != nil || !bytes.Equal(c2.Entry.Value, []byte("value")) || !c2.Entry.StoredAt.Equal(at) {
		e.t.Errorf("ReadOrAcquire of a stored entry = %s at %v, %v; want \"value\" at %v", describe(c2.Entry.Value), c2.Entry.StoredAt, c2.Err, at)
	}
	if !errors.Is(c2.LeaseErr, store.ErrLeaseHeld) {
		e.t.Fatalf("ReadOrAcquire of a held lease: LeaseErr = %v (lease %+v), want ErrLeaseHeld", c2.LeaseErr, c2.Lease)
	}
	var held *store.HeldError
	if errors.As(c2.LeaseErr, &held) && held.Holder.Owner.Token != "" && held.Holder.Owner.Token != a.Token {
		e.t.Errorf("HeldError names %s, want %s", held.Holder.Owner, a)
	}
	if c2.Versions == nil || len(c2.Versions) != 0 {
		e.t.Errorf("ReadOrAcquire of no counters: Versions = %#v, want empty", c2.Versions)
	}

	// The holder asking again keeps its lease (the same token).
	c3, err := m.ReadOrAcquire(e.ctx, k, nil, a, longTTL)
	if err != nil || c3.LeaseErr != nil {
		e.t.Fatalf("ReadOrAcquire by the holder: %v, %v", err, c3.LeaseErr)
	}
	if err := e.s.Release(e.ctx, c3.Lease); err != nil {
		e.t.Fatalf("Release: %v", err)
	}
	e.wantFree(k, b)

	// An expired lease of another owner is taken over.
	dead := e.acquire(k, owner("dead"), 200*time.Millisecond)
	e.expire(dead)
	c4, err := m.ReadOrAcquire(e.ctx, k, nil, b, longTTL)
	if err != nil || c4.LeaseErr != nil {
		e.t.Fatalf("ReadOrAcquire of an expired lease: %v, LeaseErr %v", err, c4.LeaseErr)
	}
	if !c4.Lease.TakenOver {
		e.t.Errorf("ReadOrAcquire took over an expired lease without saying so (TakenOver)")
	}
	e.wantHeld(k, owner("c"))

	// An entry past its ExpiresAt is a miss here as everywhere.
	k2 := store.Key{Namespace: ns, ID: "expiring"}
	now := e.clk.Now()
	if err := e.s.Set(e.ctx, k2, store.Entry{Value: []byte("x"), StoredAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		e.t.Fatalf("Set: %v", err)
	}
	e.clk.Advance(2 * time.Hour)
	c5, err := m.ReadOrAcquire(e.ctx, k2, nil, a, longTTL)
	if err != nil || !errors.Is(c5.Err, store.ErrNotFound) {
		e.t.Errorf("ReadOrAcquire of an expired entry: %v, Err %v; want ErrNotFound", err, c5.Err)
	}

	// What breaks the contract is refused before it reaches the driver.
	if _, err := m.ReadOrAcquire(e.ctx, store.Key{Namespace: ns}, nil, a, longTTL); !errors.Is(err, store.ErrInvalidKey) {
		e.t.Errorf("ReadOrAcquire of an empty ID: %v, want ErrInvalidKey", err)
	}
	if _, err := m.ReadOrAcquire(e.ctx, k, []string{""}, a, longTTL); !errors.Is(err, store.ErrInvalidKey) {
		e.t.Errorf("ReadOrAcquire of an empty counter name: %v, want ErrInvalidKey", err)
	}
	if _, err := m.ReadOrAcquire(e.ctx, k, nil, store.Owner{}, longTTL); err == nil {
		e.t.Errorf("ReadOrAcquire without a token: no error")
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := m.ReadOrAcquire(ctx, store.Key{Namespace: ns, ID: "cancelled"}, nil, a, longTTL); err == nil {
		e.t.Errorf("ReadOrAcquire with a cancelled context: no error")
	}
}

func testConcurrentReadOrAcquire(e *env) {
	m := e.miss()
	ns := e.ns()
	for round := range 3 {
		k := store.Key{Namespace: ns, ID: fmt.Sprint("k", round)}
		if round == 2 {
			// The last round takes over an expired lease: exactly one caller wins.
			e.expire(e.acquire(k, owner("dead"), time.Second))
		}
		const n = 16
		w := race(n, func(i int) bool {
			c, err := m.ReadOrAcquire(e.ctx, k, nil, owner(fmt.Sprint("r", round, "-", i)), longTTL)
			switch {
			case err != nil:
				e.t.Errorf("ReadOrAcquire: %v", err)
				return false
			case c.LeaseErr != nil && !errors.Is(c.LeaseErr, store.ErrLeaseHeld):
				e.t.Errorf("ReadOrAcquire: LeaseErr %v", c.LeaseErr)
			}
			return c.LeaseErr == nil
		})
		if w != 1 {
			e.t.Fatalf("round %d: %d of %d concurrent ReadOrAcquire calls took the lease, want exactly 1", round, w, n)
		}
	}
}

func testWriteAndRelease(e *env) {
	m := e.miss()
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	epoch := e.counterName("epoch")
	a, b := owner("a"), owner("b")
	c, err := m.ReadOrAcquire(e.ctx, k, []string{epoch}, a, longTTL)
	if err != nil || c.LeaseErr != nil {
		e.t.Fatalf("ReadOrAcquire: %v, %v", err, c.LeaseErr)
	}
	// An invalidation while computing: the counters read after the write show it.
	v := e.bump(epoch)
	at := time.UnixMilli(1_700_000_000_000)
	vs, err := m.WriteAndRelease(e.ctx, k, store.Entry{Value: []byte("result"), StoredAt: at}, c.Lease, []string{epoch})
	if err != nil {
		e.t.Fatalf("WriteAndRelease: %v", err)
	}
	if len(vs) != 1 || vs[0] != v {
		e.t.Errorf("WriteAndRelease: versions %v, want [%d] (read after the write)", vs, v)
	}
	e.wantValue(k, []byte("result"))
	if got := e.mustGet(k); !got.StoredAt.Equal(at) {
		e.t.Errorf("WriteAndRelease: StoredAt %v, want %v", got.StoredAt, at)
	}
	e.wantFree(k, b) // released

	// A renewed lease is released too.
	l := e.acquire(k, a, longTTL)
	if l, err = e.s.Renew(e.ctx, l, 2*longTTL); err != nil {
		e.t.Fatalf("Renew: %v", err)
	}
	if _, err := m.WriteAndRelease(e.ctx, k, store.Entry{Value: []byte("2"), StoredAt: at}, l, nil); err != nil {
		e.t.Fatalf("WriteAndRelease of a renewed lease: %v", err)
	}
	e.wantFree(k, b)

	// A lease that was renewed after the copy passed in still belongs to its owner:
	// it is released by token, not by the bytes of an older record.
	l = e.acquire(k, a, longTTL)
	if _, err = e.s.Renew(e.ctx, l, 2*longTTL); err != nil {
		e.t.Fatalf("Renew: %v", err)
	}
	if _, err := m.WriteAndRelease(e.ctx, k, store.Entry{Value: []byte("3"), StoredAt: at}, l, nil); err != nil {
		e.t.Fatalf("WriteAndRelease of an older copy of the lease: %v", err)
	}
	e.wantFree(k, b)

	// A lease that expired and was taken over is left to its new holder; the entry
	// is written all the same.
	l = e.acquire(k, a, time.Second)
	e.expire(l)
	taker := e.acquire(k, b, longTTL)
	if _, err := m.WriteAndRelease(e.ctx, k, store.Entry{Value: []byte("late"), StoredAt: at}, l, nil); err != nil {
		e.t.Fatalf("WriteAndRelease of a lost lease: %v", err)
	}
	e.wantValue(k, []byte("late"))
	e.wantHeld(k, owner("c"))
	if err := e.s.Release(e.ctx, taker); err != nil {
		e.t.Fatalf("Release: %v", err)
	}

	// Without a lease it only writes and reads.
	k2 := store.Key{Namespace: ns, ID: "no-lease"}
	other := e.acquire(k2, b, longTTL)
	vs, err = m.WriteAndRelease(e.ctx, k2, store.Entry{Value: []byte("x"), StoredAt: at}, store.Lease{}, []string{epoch})
	if err != nil || len(vs) != 1 || vs[0] != v {
		e.t.Fatalf("WriteAndRelease without a lease: %v, %v; want [%d]", vs, err, v)
	}
	e.wantValue(k2, []byte("x"))
	e.wantHeld(k2, a) // someone else's lease is untouched
	_ = e.s.Release(e.ctx, other)

	if _, err := m.WriteAndRelease(e.ctx, store.Key{Namespace: ns}, store.Entry{Value: []byte("x")}, store.Lease{}, nil); !errors.Is(err, store.ErrInvalidKey) {
		e.t.Errorf("WriteAndRelease of an empty ID: %v, want ErrInvalidKey", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := m.WriteAndRelease(ctx, k, store.Entry{Value: []byte("x")}, store.Lease{}, nil); err == nil {
		e.t.Errorf("WriteAndRelease with a cancelled context: no error")
	}
}

// ---- the driver's own capabilities ----

// counterRecord is what a driver answers for counter name at v (nil for 0).
func counterRecord(v uint64) []byte {
	if v == 0 {
		return nil
	}
	return binary.LittleEndian.AppendUint64(nil, v)
}

func testGetAndCreate(e *env) {
	drv := store.Unwrap(e.s)
	d := drv.(store.ReadOrAcquirer)
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	rk := store.Key{Namespace: store.InternalPrefix + ns, ID: "k"}
	bumped, never := e.counterName("bumped"), e.counterName("never")
	v := e.bump(bumped)
	ck, _ := store.CounterRecord(bumped, v)
	nk, _ := store.CounterRecord(never, 0)
	at := time.UnixMilli(1_700_000_000_000)
	rec := store.Entry{Value: []byte("cL1 record one"), StoredAt: at}

	r, err := d.GetAndCreate(e.ctx, k, []store.Key{ck, nk}, rk, rec)
	if err != nil {
		e.t.Fatalf("GetAndCreate: %v", err)
	}
	if !errors.Is(r.GetErr, store.ErrNotFound) {
		e.t.Errorf("GetAndCreate of a missing key: GetErr = %v, want ErrNotFound", r.GetErr)
	}
	if !r.Created || !bytes.Equal(r.Cur, rec.Value) {
		e.t.Errorf("GetAndCreate of a free record: Created %v, Cur %s; want true, %s", r.Created, describe(r.Cur), describe(rec.Value))
	}
	if len(r.Also) != 2 || !bytes.Equal(r.Also[0], counterRecord(v)) || r.Also[1] != nil {
		e.t.Errorf("GetAndCreate: Also = %q, want [%q nil] (a counter as store.CounterRecord lays it out)", r.Also, counterRecord(v))
	}
	if got, err := drv.Get(e.ctx, rk); err != nil || !bytes.Equal(got.Value, rec.Value) {
		e.t.Errorf("the created record reads %s, %v; want %s", describe(got.Value), err, describe(rec.Value))
	}

	// A record already there is left alone, and reported.
	e.set(k, []byte("value"), at)
	r, err = d.GetAndCreate(e.ctx, k, nil, rk, store.Entry{Value: []byte("cL1 record two"), StoredAt: at})
	if err != nil {
		e.t.Fatalf("GetAndCreate: %v", err)
	}
	if r.Created || !bytes.Equal(r.Cur, rec.Value) {
		e.t.Errorf("GetAndCreate of a taken record: Created %v, Cur %s; want false, %s", r.Created, describe(r.Cur), describe(rec.Value))
	}
	if r.GetErr != nil || !bytes.Equal(r.Entry.Value, []byte("value")) || !r.Entry.StoredAt.Equal(at) {
		e.t.Errorf("GetAndCreate of a stored entry = %s at %v, %v; want \"value\" at %v", describe(r.Entry.Value), r.Entry.StoredAt, r.GetErr, at)
	}
	if len(r.Also) != 0 {
		e.t.Errorf("GetAndCreate of no keys: Also = %q", r.Also)
	}
	if got, err := drv.Get(e.ctx, rk); err != nil || !bytes.Equal(got.Value, rec.Value) {
		e.t.Errorf("the record reads %s, %v after a GetAndCreate that did not create; want %s", describe(got.Value), err, describe(rec.Value))
	}

	// Of many concurrent creators of one record, exactly one creates it, and every
	// other reads what it wrote.
	rk2 := store.Key{Namespace: store.InternalPrefix + ns, ID: "race"}
	const n = 16
	var curs [n][]byte
	w := race(n, func(i int) bool {
		r, err := d.GetAndCreate(e.ctx, store.Key{Namespace: ns, ID: "race"}, nil, rk2,
			store.Entry{Value: fmt.Appendf(nil, "cL1 racer %d", i), StoredAt: at})
		if err != nil {
			e.t.Errorf("concurrent GetAndCreate: %v", err)
			return false
		}
		curs[i] = r.Cur
		return r.Created
	})
	if w != 1 {
		e.t.Fatalf("%d of %d concurrent GetAndCreate calls created the record, want exactly 1", w, n)
	}
	for i := range n {
		if !bytes.Equal(curs[i], curs[0]) {
			e.t.Errorf("concurrent GetAndCreate: callers saw different records %s and %s", describe(curs[0]), describe(curs[i]))
		}
	}
	_ = drv.Delete(e.ctx, rk)
	_ = drv.Delete(e.ctx, rk2)
}

func testSetAndDelete(e *env) {
	d := store.Unwrap(e.s).(store.WriteAndReleaser)
	get := store.Unwrap(e.s).Get
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	rk := store.Key{Namespace: store.InternalPrefix + ns, ID: "k"}
	epoch := e.counterName("epoch")
	ck, _ := store.CounterRecord(epoch, 0)
	at := time.UnixMilli(1_700_000_000_000)
	rec := []byte("cL1 the lease")
	if err := store.Unwrap(e.s).Set(e.ctx, rk, store.Entry{Value: rec, StoredAt: at}); err != nil {
		e.t.Fatalf("Set of the record: %v", err)
	}

	// The record no longer old: the entry is written, the record stays.
	deleted, vals, err := d.SetAndDelete(e.ctx, k, store.Entry{Value: []byte("one"), StoredAt: at}, rk, []byte("cL1 another lease"), []store.Key{ck})
	if err != nil {
		e.t.Fatalf("SetAndDelete: %v", err)
	}
	if deleted {
		e.t.Errorf("SetAndDelete deleted a record whose value is not old")
	}
	if len(vals) != 1 || vals[0] != nil {
		e.t.Errorf("SetAndDelete: vals = %q, want [nil] (a counter never bumped)", vals)
	}
	e.wantValue(k, []byte("one"))
	if got, err := get(e.ctx, rk); err != nil || !bytes.Equal(got.Value, rec) {
		e.t.Errorf("the record reads %s, %v; want it kept", describe(got.Value), err)
	}

	// The record still old: deleted; the counters are read after the write.
	v := e.bump(epoch)
	at2 := at.Add(time.Second)
	deleted, vals, err = d.SetAndDelete(e.ctx, k, store.Entry{Value: []byte("two"), StoredAt: at2}, rk, rec, []store.Key{ck})
	if err != nil {
		e.t.Fatalf("SetAndDelete: %v", err)
	}
	if !deleted {
		e.t.Errorf("SetAndDelete kept a record whose value is old")
	}
	if len(vals) != 1 || !bytes.Equal(vals[0], counterRecord(v)) {
		e.t.Errorf("SetAndDelete: vals = %q, want [%q] (a counter as store.CounterRecord lays it out)", vals, counterRecord(v))
	}
	if got := e.mustGet(k); !bytes.Equal(got.Value, []byte("two")) || !got.StoredAt.Equal(at2) {
		e.t.Errorf("after SetAndDelete: %s at %v, want \"two\" at %v", describe(got.Value), got.StoredAt, at2)
	}
	if _, err := get(e.ctx, rk); !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("the deleted record reads %v, want ErrNotFound", err)
	}

	// No record: nothing to delete, the entry still written.
	deleted, vals, err = d.SetAndDelete(e.ctx, k, store.Entry{Value: []byte("three"), StoredAt: at}, rk, rec, nil)
	if err != nil || deleted || len(vals) != 0 {
		e.t.Errorf("SetAndDelete of a missing record: %v, %q, %v; want false, [], nil", deleted, vals, err)
	}
	e.wantValue(k, []byte("three"))
}

// testReadOrClaim runs for every driver: the first read of a call takes the lease on
// a miss only, natively (a store.GetOrCreator) or over the fallback.
func testReadOrClaim(e *env) {
	cl, ok := e.s.(store.Claimer)
	if !ok {
		e.t.Fatalf("the adapted store %T is not a store.Claimer", e.s)
	}
	d := store.Unwrap(e.s)
	_, roc := store.AsGetOrCreator(d)
	_, roa := d.(store.ReadOrAcquirer)
	_, swapper := d.(store.Swapper)
	if want := roc && roa && swapper; cl.ClaimsNatively() != want {
		e.t.Errorf("ClaimsNatively() = %v, want %v (GetOrCreator %v, ReadOrAcquirer %v, Swapper %v)",
			cl.ClaimsNatively(), want, roc, roa, swapper)
	}
	ns := e.ns()
	bumped := e.counterName("bumped")
	v := e.bump(bumped)
	a, b := owner("a"), owner("b")
	at := time.UnixMilli(1_700_000_000_000)

	// A hit: the entry and the counters, and no lease taken.
	hit := store.Key{Namespace: ns, ID: "hit"}
	e.set(hit, []byte("value"), at)
	c, err := cl.ReadOrClaim(e.ctx, hit, []string{bumped}, a, longTTL)
	if err != nil {
		e.t.Fatalf("ReadOrClaim of a stored entry: %v", err)
	}
	if c.Err != nil || !bytes.Equal(c.Entry.Value, []byte("value")) || !c.Entry.StoredAt.Equal(at) {
		e.t.Errorf("ReadOrClaim of a stored entry = %s at %v, %v; want \"value\" at %v", describe(c.Entry.Value), c.Entry.StoredAt, c.Err, at)
	}
	if !errors.Is(c.LeaseErr, store.ErrNotClaimed) {
		e.t.Errorf("ReadOrClaim of a stored entry: LeaseErr = %v (lease %+v), want ErrNotClaimed", c.LeaseErr, c.Lease)
	}
	if c.VersionsErr != nil || len(c.Versions) != 1 || c.Versions[0] != v {
		e.t.Errorf("ReadOrClaim: Versions = %v, %v; want [%d]", c.Versions, c.VersionsErr, v)
	}
	e.wantFree(hit, b) // a hit takes no lease

	// A miss: not found, the counters, and the lease.
	k := store.Key{Namespace: ns, ID: "miss"}
	c, err = cl.ReadOrClaim(e.ctx, k, []string{bumped}, a, longTTL)
	if err != nil {
		e.t.Fatalf("ReadOrClaim of a missing key: %v", err)
	}
	if !errors.Is(c.Err, store.ErrNotFound) {
		e.t.Errorf("ReadOrClaim of a missing key: Err = %v, want ErrNotFound", c.Err)
	}
	if c.VersionsErr != nil || len(c.Versions) != 1 || c.Versions[0] != v {
		e.t.Errorf("ReadOrClaim: Versions = %v, %v; want [%d]", c.Versions, c.VersionsErr, v)
	}
	if c.LeaseErr != nil || c.Lease.Key != k || c.Lease.Owner != a {
		e.t.Fatalf("ReadOrClaim of a missing key with a free lease: Lease %+v, %v; want owner %s", c.Lease, c.LeaseErr, a)
	}
	e.wantHeld(k, b)
	e.wantMissing(k) // taking the lease writes no entry

	// Another owner, on the same miss, learns that the lease is held.
	c2, err := cl.ReadOrClaim(e.ctx, k, nil, b, longTTL)
	if err != nil {
		e.t.Fatalf("ReadOrClaim by another owner: %v", err)
	}
	if !errors.Is(c2.LeaseErr, store.ErrLeaseHeld) {
		e.t.Errorf("ReadOrClaim of a held lease: LeaseErr = %v, want ErrLeaseHeld", c2.LeaseErr)
	}
	// Once the holder stored its result, a claim is a hit again and takes nothing.
	if _, err := e.miss().WriteAndRelease(e.ctx, k, store.Entry{Value: []byte("result"), StoredAt: at}, c.Lease, nil); err != nil {
		e.t.Fatalf("WriteAndRelease: %v", err)
	}
	c3, err := cl.ReadOrClaim(e.ctx, k, nil, b, longTTL)
	if err != nil || c3.Err != nil || !bytes.Equal(c3.Entry.Value, []byte("result")) || !errors.Is(c3.LeaseErr, store.ErrNotClaimed) {
		e.t.Errorf("ReadOrClaim after the result landed = %s, %v, lease %v, %v; want \"result\", ErrNotClaimed",
			describe(c3.Entry.Value), c3.Err, c3.LeaseErr, err)
	}
	e.wantFree(k, a)

	// Of many concurrent claims of one missing key, exactly one takes the lease.
	raceKey := store.Key{Namespace: ns, ID: "race"}
	const n = 16
	w := race(n, func(i int) bool {
		c, err := cl.ReadOrClaim(e.ctx, raceKey, nil, owner(fmt.Sprint("racer", i)), longTTL)
		switch {
		case err != nil:
			e.t.Errorf("concurrent ReadOrClaim: %v", err)
			return false
		case c.LeaseErr != nil && !errors.Is(c.LeaseErr, store.ErrLeaseHeld):
			e.t.Errorf("concurrent ReadOrClaim: LeaseErr = %v, want nil or ErrLeaseHeld", c.LeaseErr)
		}
		return c.LeaseErr == nil
	})
	if w != 1 {
		e.t.Errorf("%d of %d concurrent ReadOrClaim calls took the lease, want exactly 1", w, n)
	}

	// An entry past its ExpiresAt is a miss; the lease may be taken or left untried.
	k2 := store.Key{Namespace: ns, ID: "expiring"}
	now := e.clk.Now()
	e.setExpiring(k2, []byte("x"), now, now.Add(time.Hour))
	e.clk.Advance(2 * time.Hour)
	c5, err := cl.ReadOrClaim(e.ctx, k2, nil, a, longTTL)
	if err != nil || !errors.Is(c5.Err, store.ErrNotFound) {
		e.t.Errorf("ReadOrClaim of an expired entry: %v, Err %v; want ErrNotFound", err, c5.Err)
	}
	if c5.LeaseErr != nil && !errors.Is(c5.LeaseErr, store.ErrNotClaimed) {
		e.t.Errorf("ReadOrClaim of an expired entry: LeaseErr = %v, want nil or ErrNotClaimed", c5.LeaseErr)
	}

	// What breaks the contract is refused before it reaches the driver.
	if _, err := cl.ReadOrClaim(e.ctx, store.Key{Namespace: ns}, nil, a, longTTL); !errors.Is(err, store.ErrInvalidKey) {
		e.t.Errorf("ReadOrClaim of an empty ID: %v, want ErrInvalidKey", err)
	}
	if _, err := cl.ReadOrClaim(e.ctx, k, nil, store.Owner{}, longTTL); err == nil {
		e.t.Errorf("ReadOrClaim without a token: no error")
	}
}

// testGetOrCreate runs for a driver that declares store.GetOrCreator, whether or not
// the portable layer uses it (store.MaybeGetOrCreator).
func testGetOrCreate(e *env) {
	drv := store.Unwrap(e.s)
	d := drv.(store.GetOrCreator)
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	rk := store.Key{Namespace: store.InternalPrefix + ns, ID: "k"}
	bumped := e.counterName("bumped")
	v := e.bump(bumped)
	ck, _ := store.CounterRecord(bumped, v)
	at := time.UnixMilli(1_700_000_000_000)
	rec := store.Entry{Value: []byte("cL1 record one"), StoredAt: at}

	// k has an entry: nothing is created, the entry and the counters are read.
	e.set(k, []byte("value"), at)
	r, err := d.GetOrCreate(e.ctx, k, []store.Key{ck}, rk, rec)
	if err != nil {
		e.t.Fatalf("GetOrCreate: %v", err)
	}
	if r.Created || r.GetErr != nil || !bytes.Equal(r.Entry.Value, []byte("value")) || !r.Entry.StoredAt.Equal(at) {
		e.t.Errorf("GetOrCreate of a stored entry: Created %v, entry %s at %v, %v; want not created, \"value\" at %v",
			r.Created, describe(r.Entry.Value), r.Entry.StoredAt, r.GetErr, at)
	}
	if len(r.Also) != 1 || !bytes.Equal(r.Also[0], counterRecord(v)) {
		e.t.Errorf("GetOrCreate: Also = %q, want [%q]", r.Also, counterRecord(v))
	}
	if got, err := drv.Get(e.ctx, rk); !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("GetOrCreate of a stored entry wrote the record: %s, %v", describe(got.Value), err)
	}

	// k has no entry: GetAndCreate.
	if err := drv.Delete(e.ctx, k); err != nil {
		e.t.Fatalf("Delete: %v", err)
	}
	r, err = d.GetOrCreate(e.ctx, k, nil, rk, rec)
	if err != nil {
		e.t.Fatalf("GetOrCreate: %v", err)
	}
	if !errors.Is(r.GetErr, store.ErrNotFound) || !r.Created || !bytes.Equal(r.Cur, rec.Value) {
		e.t.Errorf("GetOrCreate of a missing key and a free record: GetErr %v, Created %v, Cur %s; want ErrNotFound, true, %s",
			r.GetErr, r.Created, describe(r.Cur), describe(rec.Value))
	}
	if got, err := drv.Get(e.ctx, rk); err != nil || !bytes.Equal(got.Value, rec.Value) {
		e.t.Errorf("the created record reads %s, %v; want %s", describe(got.Value), err, describe(rec.Value))
	}
	// ... and a record already there is left alone, and reported.
	r, err = d.GetOrCreate(e.ctx, k, nil, rk, store.Entry{Value: []byte("cL1 record two"), StoredAt: at})
	if err != nil {
		e.t.Fatalf("GetOrCreate: %v", err)
	}
	if r.Created || !bytes.Equal(r.Cur, rec.Value) {
		e.t.Errorf("GetOrCreate of a taken record: Created %v, Cur %s; want false, %s", r.Created, describe(r.Cur), describe(rec.Value))
	}
	_ = drv.Delete(e.ctx, rk)

	// An entry whose ExpiresAt is not after the record's stamp is no entry.
	old := store.Key{Namespace: ns, ID: "expired"}
	rkOld := store.Key{Namespace: store.InternalPrefix + ns, ID: "expired"}
	e.setExpiring(old, []byte("old"), at, at.Add(time.Second))
	r, err = d.GetOrCreate(e.ctx, old, nil, rkOld, store.Entry{Value: rec.Value, StoredAt: at.Add(2 * time.Second)})
	if err != nil || !r.Created {
		e.t.Errorf("GetOrCreate past the entry's ExpiresAt: Created %v, %v; want created", r.Created, err)
	}
	_ = drv.Delete(e.ctx, rkOld)

	// Of many concurrent creators on a missing key, exactly one creates.
	raceKey := store.Key{Namespace: ns, ID: "race"}
	rkRace := store.Key{Namespace: store.InternalPrefix + ns, ID: "race"}
	const n = 16
	w := race(n, func(i int) bool {
		r, err := d.GetOrCreate(e.ctx, raceKey, nil, rkRace, store.Entry{Value: fmt.Appendf(nil, "cL1 racer %d", i), StoredAt: at})
		if err != nil {
			e.t.Errorf("concurrent GetOrCreate: %v", err)
			return false
		}
		return r.Created
	})
	if w != 1 {
		e.t.Errorf("%d of %d concurrent GetOrCreate calls created the record, want exactly 1", w, n)
	}
	_ = drv.Delete(e.ctx, rkRace)
}

// testSetAndDeleteMany runs for store.SetAndDeleteBatcher drivers: every entry is
// written (over what was there), each record is deleted exactly when its value is
// old (never when old is nil), the counters are read after the writes, and a key
// written twice in one batch keeps the later entry.
func testSetAndDeleteMany(e *env) {
	d := store.Unwrap(e.s)
	sb := d.(store.SetAndDeleteBatcher)
	ns := e.ns()
	var ks, rks []store.Key
	for i := range 4 {
		ks = append(ks, store.Key{Namespace: ns, ID: fmt.Sprintf("k%d", i)})
		rks = append(rks, store.Key{Namespace: store.InternalPrefix + ns, ID: fmt.Sprintf("k%d", i)})
	}
	epoch := e.counterName("epoch")
	ck, _ := store.CounterRecord(epoch, 0)
	at := time.UnixMilli(1_700_000_000_000)
	recs := map[int][]byte{0: []byte("cL0 a lease"), 1: []byte("cL1 a lease"), 3: []byte("cL3 a lease")}
	for i, rec := range recs {
		if err := d.Set(e.ctx, rks[i], store.Entry{Value: rec, StoredAt: at}); err != nil {
			e.t.Fatalf("Set of a record: %v", err)
		}
	}
	e.set(ks[1], []byte("before"), at)
	v := e.bump(epoch)
	entries := func(prefix string, at time.Time) []store.Entry {
		es := make([]store.Entry, len(ks))
		for i := range es {
			es[i] = store.Entry{Value: fmt.Appendf(nil, "%s%d", prefix, i), StoredAt: at}
		}
		return es
	}
	olds := [][]byte{recs[0], []byte("cL1 another lease"), []byte("cL2 no record"), nil}
	deleted, errs, vals, err := sb.SetAndDeleteMany(e.ctx, ks, entries("v", at), rks, olds, []store.Key{ck})
	if err != nil || len(deleted) != len(ks) || len(errs) != len(ks) {
		e.t.Fatalf("SetAndDeleteMany = %v, %v, %v; want %d results each and nil", deleted, errs, err, len(ks))
	}
	if want := []bool{true, false, false, false}; !slices.Equal(deleted, want) {
		e.t.Errorf("SetAndDeleteMany deleted %v, want %v (only the record whose value is old)", deleted, want)
	}
	for i, err := range errs {
		if err != nil {
			e.t.Errorf("SetAndDeleteMany %s: %v", ks[i], err)
		}
	}
	if len(vals) != 1 || !bytes.Equal(vals[0], counterRecord(v)) {
		e.t.Errorf("SetAndDeleteMany: vals = %q, want [%q]", vals, counterRecord(v))
	}
	for i, k := range ks {
		e.wantValue(k, fmt.Appendf(nil, "v%d", i))
	}
	for i, rk := range rks {
		got, err := d.Get(e.ctx, rk)
		switch rec, ok := recs[i]; {
		case i == 0 || !ok:
			if !errors.Is(err, store.ErrNotFound) {
				e.t.Errorf("record %s reads %s, %v; want it gone", rk, describe(got.Value), err)
			}
		case err != nil || !bytes.Equal(got.Value, rec):
			e.t.Errorf("record %s reads %s, %v; want it kept", rk, describe(got.Value), err)
		}
	}

	// Over the entries just written, and a key twice: the later entry stays.
	at2 := at.Add(time.Second)
	es := entries("w", at2)
	twice := append(slices.Clone(ks), ks[2])
	es = append(es, store.Entry{Value: []byte("w2 again"), StoredAt: at2})
	deleted, errs, vals, err = sb.SetAndDeleteMany(e.ctx, twice, es, append(slices.Clone(rks), rks[2]), make([][]byte, len(twice)), nil)
	if err != nil || len(deleted) != len(twice) || len(errs) != len(twice) || len(vals) != 0 {
		e.t.Fatalf("SetAndDeleteMany = %v, %v, %q, %v; want %d results each, no values and nil", deleted, errs, vals, err, len(twice))
	}
	for i, k := range ks {
		want := fmt.Appendf(nil, "w%d", i)
		if i == 2 {
			want = []byte("w2 again")
		}
		if got := e.mustGet(k); !bytes.Equal(got.Value, want) || !got.StoredAt.Equal(at2) {
			e.t.Errorf("%s: %s at %v, want %s at %v", k, describe(got.Value), got.StoredAt, want, at2)
		}
	}
	if got, err := d.Get(e.ctx, rks[3]); err != nil || !bytes.Equal(got.Value, recs[3]) {
		e.t.Errorf("record %s, old nil, reads %s, %v; want it kept", rks[3], describe(got.Value), err)
	}
	if _, _, _, err := sb.SetAndDeleteMany(e.ctx, ks, es[:1], rks, olds, nil); err == nil {
		e.t.Error("SetAndDeleteMany of 4 keys and 1 entry: nil error")
	}
}
