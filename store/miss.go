package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MissPath is the two calls of a miss, which every Store that [Adapt] returns
// implements: ReadOrAcquire (look again, take the calculation lease, read the
// counters the result will depend on) before computing, and WriteAndRelease (store
// the result, give the lease up, read the counters again) after. On a driver that is
// a [ReadOrAcquirer] and a [WriteAndReleaser] each is one round trip; otherwise the
// portable layer answers with a batched read and the lease protocol over [Swapper]
// (or the leases it keeps in this process).
type MissPath interface {
	// ReadOrAcquire reads the entry for k and the named counters, and takes the
	// calculation lease on k for ttl on behalf of o, as Acquire does (an expired lease
	// is taken over; another owner's unexpired one is reported in Claim.LeaseErr). It
	// takes the lease whether or not there is an entry: the caller decides whether
	// the entry answers it, and releases the lease if so. When it takes the lease,
	// the entry is read no earlier than the lease was taken: an entry stored by a
	// holder that released the lease before o took it is always seen. err reports a failure that
	// left nothing known (an invalid key or counter name, a done context, a failed
	// round trip); a failure of one part alone is in that part's error.
	ReadOrAcquire(ctx context.Context, k Key, counters []string, o Owner, ttl time.Duration) (c Claim, err error)
	// WriteAndRelease stores e under k, then releases l if it is still l.Owner's (a
	// zero l, without a token, releases nothing), then reads the named counters, in
	// that order. On error, the write may or may not have happened; ErrTooLarge
	// means it did not.
	WriteAndRelease(ctx context.Context, k Key, e Entry, l Lease, counters []string) (versions []uint64, err error)
}

// Claim is what [MissPath.ReadOrAcquire] found.
type Claim struct {
	// Entry is the entry for k when Err is nil.
	Entry Entry
	// Err matches ErrNotFound when k has no entry (or an expired or corrupt one), or
	// is the failure to read it.
	Err error
	// Versions are the counters' values, in order, when VersionsErr is nil.
	Versions    []uint64
	VersionsErr error
	// Lease is the lease taken, when LeaseErr is nil. LeaseErr matches ErrLeaseHeld
	// (usually a [*HeldError]) when another owner holds the lease, or is the failure
	// to take it.
	Lease    Lease
	LeaseErr error
}

// Claimer is the first read of a call, which every Store that [Adapt] returns
// implements: ReadOrClaim reads the entry, and takes the calculation lease only when
// there is none. When a call's first read is ReadOrClaim, a hit costs that one call
// and a miss two (ReadOrClaim, then [MissPath.WriteAndRelease]), instead of a read,
// then ReadOrAcquire, then WriteAndRelease. It is one round trip only on a driver
// that is a [GetOrCreator] and keeps its leases over Swap (ClaimsNatively);
// otherwise it costs at least what ReadOrAcquire does (a miss reads, takes the
// lease, and reads the entry again, since it may have been stored before the lease
// was taken), and a plain Get is the better first read.
type Claimer interface {
	// ReadOrClaim is ReadOrAcquire, except that it tries the lease only when k has
	// no entry: when it did not try, LeaseErr is ErrNotClaimed and nothing was
	// written. It may leave the lease untried when k holds a record that Claim.Err
	// reports as expired or corrupt. An entry written while it runs may come back
	// with the lease taken (see [GetOrCreator]): the caller releases the lease if the
	// entry answers it.
	ReadOrClaim(ctx context.Context, k Key, counters []string, o Owner, ttl time.Duration) (c Claim, err error)
	// ClaimsNatively reports whether ReadOrClaim is one round trip: the driver is a
	// [GetOrCreator] whose leases the portable layer keeps over its [Swapper].
	ClaimsNatively() bool
}

// ErrNotClaimed is Claim.LeaseErr of a [Claimer.ReadOrClaim] that found an entry and
// so did not try the lease.
var ErrNotClaimed = errors.New("store: lease not tried: the key has an entry")

var _ Claimer = (*portable)(nil)

// ClaimsNatively implements [Claimer].
func (p *portable) ClaimsNatively() bool {
	return p.roc != nil && p.roa != nil && p.swapper != nil
}

// checkClaim is the validation of ReadOrClaim and ReadOrAcquire.
func (p *portable) checkClaim(ctx context.Context, k Key, counters []string, o Owner, ttl time.Duration) error {
	if err := p.checkLease(ctx, k, o, ttl); err != nil {
		return err
	}
	return p.checkCounters(ctx, counters)
}

// ReadOrClaim implements [Claimer].
func (p *portable) ReadOrClaim(ctx context.Context, k Key, counters []string, o Owner, ttl time.Duration) (Claim, error) {
	if err := p.checkClaim(ctx, k, counters, o, ttl); err != nil {
		return Claim{}, err
	}
	if p.ClaimsNatively() {
		return p.claimWith(ctx, k, counters, o, ttl, true)
	}
	// The fallback: one batched read, then the lease only on a miss. The lease record
	// is not read with the entry: a hit does not need it, and Acquire tries
	// create-if-absent first.
	c, err := p.readForClaim(ctx, k, counters, o, 0)
	if err != nil {
		return Claim{}, err
	}
	if c.Err == nil || !errors.Is(c.Err, ErrNotFound) {
		c.LeaseErr = ErrNotClaimed
		return c, nil
	}
	c.Lease, c.LeaseErr = p.Acquire(ctx, k, o, ttl)
	if c.LeaseErr == nil {
		// Taken after the read: look again (rereadClaim says why).
		if err := p.rereadClaim(ctx, &c, k, counters, o); err != nil {
			return Claim{}, err
		}
	}
	return c, nil
}

var _ MissPath = (*portable)(nil)

// ReadOrAcquire implements [MissPath].
func (p *portable) ReadOrAcquire(ctx context.Context, k Key, counters []string, o Owner, ttl time.Duration) (Claim, error) {
	if err := p.checkClaim(ctx, k, counters, o, ttl); err != nil {
		return Claim{}, err
	}
	var c Claim
	switch {
	case p.swapper == nil:
		// Leases kept in this process: the lease is its own (free) call, the reads
		// are one batch.
		var err error
		if c, err = p.readForClaim(ctx, k, counters, o, 0); err != nil {
			return Claim{}, err
		}
		c.Lease, c.LeaseErr = p.acquireLocal(k, o, ttl)
		return c, nil
	case p.roa != nil:
		return p.claimWith(ctx, k, counters, o, ttl, false)
	}
	// Over Swap: the entry, the lease record and the counters in one batch, then the
	// swap that takes the lease.
	return p.readForClaim(ctx, k, counters, o, ttl)
}

// readForClaim reads k, the counters, and, when ttl is not zero, k's lease record,
// which it then tries to take for o for ttl. It is ReadOrAcquire without a
// ReadOrAcquirer.
func (p *portable) readForClaim(ctx context.Context, k Key, names []string, o Owner, ttl time.Duration) (Claim, error) {
	withLease := ttl > 0
	ks := make([]Key, 0, 2+len(names))
	ks = append(ks, k)
	if withLease {
		ks = append(ks, leaseKey(k))
	}
	recordCounters := p.versioner == nil
	if recordCounters {
		for _, n := range names {
			ks = append(ks, counterKey(n))
		}
	}
	es, errs, err := GetMany(ctx, p.d, ks)
	if err != nil {
		return Claim{}, err
	}
	var c Claim
	c.Entry, c.Err = p.unexpired(k, es[0], errs[0])
	if c.Err != nil {
		c.Entry = Entry{}
	}
	rest := 1
	if withLease {
		rest = 2
	}
	switch {
	case len(names) == 0:
		c.Versions = []uint64{}
	case recordCounters:
		c.Versions, c.VersionsErr = counters(names, es[rest:], errs[rest:])
	default:
		c.Versions, c.VersionsErr = p.versioner.Versions(ctx, names)
	}
	if withLease {
		var cur []byte
		found := false
		switch err := errs[1]; {
		case err == nil:
			cur, found = es[1].Value, true
			if cur == nil {
				cur = []byte{}
			}
		case !errors.Is(err, ErrNotFound):
			c.LeaseErr = err
			return c, nil
		}
		var again bool
		if c.Lease, again, c.LeaseErr = p.takeLease(ctx, k, cur, found, o, ttl); again {
			if err := p.rereadClaim(ctx, &c, k, names, o); err != nil {
				return Claim{}, err
			}
		}
	}
	return c, nil
}

// rereadClaim reads k and the counters again into c, whose lease was taken after c
// was read: between that read and the lease, another caller may have taken the
// lease, stored k's entry and released it, and a claim reporting the lease without
// that entry would have its caller compute k a second time (two computations of one
// key across processes; TestClaimAfterLostTakeoverSeesEntry). If the read fails, the
// lease is released and the error returned.
func (p *portable) rereadClaim(ctx context.Context, c *Claim, k Key, counters []string, o Owner) error {
	r, err := p.readForClaim(ctx, k, counters, o, 0)
	if err != nil {
		_ = p.Release(context.WithoutCancel(ctx), c.Lease)
		return err
	}
	r.Lease, r.LeaseErr = c.Lease, nil
	*c = r
	return nil
}

// takeLease applies the lease rule to the lease record cur (found: there is one) and
// swaps it for o's lease, falling back to Acquire's loop if another caller changed the
// record in between. again reports a lease that Acquire took: the record was no
// longer cur, so what was read with cur may be older than the lease, and the caller
// reads it again (rereadClaim). A lease swapped in for cur itself needs no second
// read: the record stayed cur from its read to the swap, so no other caller held the
// lease meanwhile.
func (p *portable) takeLease(ctx context.Context, k Key, cur []byte, found bool, o Owner, ttl time.Duration) (l Lease, again bool, err error) {
	l, taken, err := p.swapLease(ctx, k, leaseKey(k), cur, found, o, ttl)
	if err != nil || taken {
		return l, false, err
	}
	l, err = p.Acquire(ctx, k, o, ttl)
	return l, err == nil, err
}

// claimWith is ReadOrAcquire over the driver's GetAndCreate: one round trip when the
// lease is free, and one swap more to take over an expired one. With ifMissing it is
// over GetOrCreate: then, when the driver found a record at k and so created nothing,
// the lease is not tried.
func (p *portable) claimWith(ctx context.Context, k Key, counters []string, o Owner, ttl time.Duration, ifMissing bool) (Claim, error) {
	create := p.roa.GetAndCreate
	if ifMissing {
		create = p.roc.GetOrCreate
	}
	also := counterKeys(counters)
	now := p.clk.Now()
	l := Lease{Key: k, Owner: o, ExpiresAt: now.Add(ttl)}
	rk := leaseKey(k)
	r, err := create(ctx, k, also, rk, Entry{Value: encodeLease(l), StoredAt: now})
	if err != nil {
		return Claim{}, err
	}
	if len(r.Also) != len(also) {
		return Claim{}, fmt.Errorf("store: GetAndCreate returned %d records for %d keys", len(r.Also), len(also))
	}
	var c Claim
	c.Entry, c.Err = p.unexpired(k, r.Entry, r.GetErr)
	if c.Err != nil {
		c.Entry = Entry{}
	}
	c.Versions, c.VersionsErr = recordValues(counters, r.Also)
	if r.Created {
		c.Lease = l
		return c, nil
	}
	if ifMissing && (r.GetErr == nil || !errors.Is(r.GetErr, ErrNotFound)) {
		// A record at k, perhaps one that reads as expired or corrupt here.
		c.LeaseErr = ErrNotClaimed
		return c, nil
	}
	cur := r.Cur
	if cur == nil {
		cur = []byte{}
	}
	var again bool
	if c.Lease, again, c.LeaseErr = p.takeLease(ctx, k, cur, true, o, ttl); again {
		if err := p.rereadClaim(ctx, &c, k, counters, o); err != nil {
			return Claim{}, err
		}
	}
	return c, nil
}

// recordValues decodes counter records read raw (nil: never bumped).
func recordValues(names []string, vals [][]byte) ([]uint64, error) {
	vs := make([]uint64, len(names))
	for i, n := range names {
		if vals[i] == nil {
			continue
		}
		v, err := decodeCounter(n, vals[i])
		if err != nil {
			return nil, err
		}
		vs[i] = v
	}
	return vs, nil
}

// WriteAndRelease implements [MissPath].
func (p *portable) WriteAndRelease(ctx context.Context, k Key, e Entry, l Lease, counters []string) ([]uint64, error) {
	if err := p.check(ctx, k); err != nil {
		return nil, err
	}
	if err := p.checkCounters(ctx, counters); err != nil {
		return nil, err
	}
	hasLease := l.Owner.Token != ""
	if hasLease && l.Key != k {
		return nil, fmt.Errorf("store: WriteAndRelease of %s with the lease of %s", k, l.Key)
	}
	if p.war != nil && p.swapper != nil {
		return p.writeNative(ctx, k, e, l, hasLease, counters)
	}
	err := p.d.Set(ctx, k, e)
	p.changed(k)
	if hasLease {
		if rerr := p.Release(ctx, l); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return nil, err
	}
	if len(counters) == 0 {
		return []uint64{}, nil
	}
	return p.Versions(ctx, counters)
}

// noLease is a record value that is never a lease (one starts with leaseMagic).
var noLease = []byte("no lease")

// writeNative is WriteAndRelease over the driver's SetAndDelete.
func (p *portable) writeNative(ctx context.Context, k Key, e Entry, l Lease, hasLease bool, counters []string) ([]uint64, error) {
	also := counterKeys(counters)
	// Without a lease, rk is the lease record and old a value no lease record has,
	// so nothing is deleted.
	rk, old := leaseKey(k), noLease
	if hasLease {
		old = encodeLease(l)
	}
	deleted, vals, err := p.war.SetAndDelete(ctx, k, e, rk, old, also)
	p.changed(k)
	if err != nil {
		return nil, err
	}
	if hasLease && !deleted {
		// The record is not the one this lease wrote: renewed since l, taken over, or
		// released. Release decides by the owner's token.
		if err := p.Release(ctx, l); err != nil {
			return nil, err
		}
	}
	if len(vals) != len(also) {
		return nil, fmt.Errorf("store: SetAndDelete returned %d records for %d keys", len(vals), len(also))
	}
	return recordValues(counters, vals)
}
