package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// maxSwaps bounds the read-and-swap rounds of one lease operation. Each lost round
// means another caller changed the record in between; after this many, Acquire
// reports the lease as held and the caller waits like any other.
const maxSwaps = 8

// decide is the lease rule, written once for every store: the lease held by cur may be
// taken by o at now unless another owner holds it and it has not expired. No record, a
// record that cannot be read, an expired lease and o's own lease (the same token) may
// all be taken.
func decide(cur *Lease, o Owner, now time.Time) *HeldError {
	if cur == nil || cur.Owner.Token == o.Token || !now.Before(cur.ExpiresAt) {
		return nil
	}
	return &HeldError{Holder: *cur}
}

func (p *portable) checkLease(ctx context.Context, k Key, o Owner, ttl time.Duration) error {
	if err := p.check(ctx, k); err != nil {
		return err
	}
	if err := checkOwner(o); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("store: lease ttl %v; want a positive duration", ttl)
	}
	return nil
}

// readRecord returns the value at rk, and whether there is one. The value of a found
// record is never nil, so that it can be passed to Swap as old.
func (p *portable) readRecord(ctx context.Context, rk Key) ([]byte, bool, error) {
	e, err := p.d.Get(ctx, rk)
	switch {
	case err == nil:
		if e.Value == nil {
			e.Value = []byte{}
		}
		return e.Value, true, nil
	case errors.Is(err, ErrNotFound):
		return nil, false, nil
	}
	return nil, false, err
}

// Acquire implements Store.
func (p *portable) Acquire(ctx context.Context, k Key, o Owner, ttl time.Duration) (Lease, error) {
	if err := p.checkLease(ctx, k, o, ttl); err != nil {
		return Lease{}, err
	}
	switch {
	case p.swapper == nil:
		return p.acquireLocal(k, o, ttl)
	}
	rk := leaseKey(k)
	// Most leases are taken where there is no record: try create-if-absent first,
	// one round trip, and read the record only when that finds one.
	if l, taken, err := p.swapLease(ctx, k, rk, nil, false, o, ttl); err != nil || taken {
		return l, err
	}
	for range maxSwaps {
		cur, found, err := p.readRecord(ctx, rk)
		if err != nil {
			return Lease{}, err
		}
		l, taken, err := p.swapLease(ctx, k, rk, cur, found, o, ttl)
		if err != nil || taken {
			return l, err
		}
	}
	return Lease{}, &HeldError{Holder: Lease{Key: k}}
}

// swapLease applies the lease rule to the record cur (found: there is one) and, if o
// may take it, swaps it for o's lease. taken is false with a nil error when another
// caller changed the record in between.
func (p *portable) swapLease(ctx context.Context, k, rk Key, cur []byte, found bool, o Owner, ttl time.Duration) (l Lease, taken bool, err error) {
	var holder *Lease
	if found {
		if h, err := decodeLease(k, cur); err == nil {
			holder = &h
		}
	}
	now := p.clk.Now()
	if held := decide(holder, o, now); held != nil {
		return Lease{}, false, held
	}
	l = Lease{Key: k, Owner: o, ExpiresAt: now.Add(ttl), TakenOver: holder != nil && holder.Owner.Token != o.Token}
	// A takeover is a compare-and-swap against the record read: of two callers taking
	// over the same dead holder, only one succeeds.
	ok, err := p.swapper.Swap(ctx, rk, cur, &Entry{Value: encodeLease(l), StoredAt: now})
	if err != nil || !ok {
		return Lease{}, false, err
	}
	return l, true, nil
}

// Renew implements Store.
func (p *portable) Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	if err := p.checkLease(ctx, l.Key, l.Owner, ttl); err != nil {
		return Lease{}, err
	}
	switch {
	case p.swapper == nil:
		return p.renewLocal(l, ttl)
	}
	rk := leaseKey(l.Key)
	for range maxSwaps {
		cur, found, err := p.readRecord(ctx, rk)
		if err != nil {
			return Lease{}, err
		}
		if !found {
			return Lease{}, lost(l)
		}
		if h, err := decodeLease(l.Key, cur); err != nil || h.Owner.Token != l.Owner.Token {
			return Lease{}, lost(l)
		}
		nl, taken, err := p.swapLease(ctx, l.Key, rk, cur, true, l.Owner, ttl)
		if err != nil || taken {
			return nl, err
		}
	}
	return Lease{}, lost(l)
}

func lost(l Lease) error {
	return fmt.Errorf("%w: %s of %s", ErrLeaseLost, l.Key, l.Owner)
}

// Release implements Store.
func (p *portable) Release(ctx context.Context, l Lease) error {
	if err := p.check(ctx, l.Key); err != nil {
		return err
	}
	if err := checkOwner(l.Owner); err != nil {
		return err
	}
	defer p.changed(l.Key)
	switch {
	case p.swapper == nil:
		p.releaseLocal(l)
		return nil
	}
	rk := leaseKey(l.Key)
	// The record is usually the very lease l (its encoding is deterministic): delete
	// it by compare-and-swap in one round trip, and read it only when that fails
	// (renewed under another expiry, taken over, or gone).
	if ok, err := p.swapper.Swap(ctx, rk, encodeLease(l), nil); err != nil || ok {
		return err
	}
	for range maxSwaps {
		cur, found, err := p.readRecord(ctx, rk)
		if err != nil || !found {
			return err
		}
		if h, err := decodeLease(l.Key, cur); err != nil || h.Owner.Token != l.Owner.Token {
			return nil // not ours (any more): nothing to do
		}
		ok, err := p.swapper.Swap(ctx, rk, cur, nil)
		if err != nil || ok {
			return err
		}
	}
	return nil
}

// Leases implements Store.
func (p *portable) Leases(ctx context.Context, ns string) iter.Seq2[Lease, error] {
	if err := p.checkNS(ctx, ns); err != nil {
		return func(yield func(Lease, error) bool) { yield(Lease{}, err) }
	}
	switch {
	case p.swapper == nil:
		return p.leasesLocal(ns)
	case p.lister == nil:
		return func(yield func(Lease, error) bool) { yield(Lease{}, unsupported("Leases")) }
	}
	return func(yield func(Lease, error) bool) {
		now := p.clk.Now()
		for info, err := range p.lister.Entries(ctx, InternalPrefix+ns) {
			if err != nil {
				yield(Lease{}, err)
				return
			}
			k := Key{Namespace: ns, ID: info.Key.ID}
			cur, found, err := p.readRecord(ctx, leaseKey(k))
			if err != nil {
				yield(Lease{}, err)
				return
			}
			if !found {
				continue // released since it was listed
			}
			l, err := decodeLease(k, cur)
			if err != nil || !now.Before(l.ExpiresAt) {
				continue // unreadable records and expired leases hold nothing
			}
			if !yield(l, nil) {
				return
			}
		}
	}
}

// ReleaseAll implements Store.
func (p *portable) ReleaseAll(ctx context.Context, ns string) (int, error) {
	if err := p.checkNS(ctx, ns); err != nil {
		return 0, err
	}
	defer p.changedNS(ns)
	switch {
	case p.swapper == nil:
		return p.releaseAllLocal(ns), nil
	case p.lister == nil && p.clearer != nil:
		// A driver that can clear but not list (memcached): release uncounted.
		return 0, p.clearer.Clear(ctx, InternalPrefix+ns)
	case p.lister == nil:
		return 0, unsupported("ReleaseAll")
	}
	n := 0
	for _, err := range p.lister.Entries(ctx, InternalPrefix+ns) {
		if err != nil {
			return 0, err
		}
		n++
	}
	return n, p.lister.Clear(ctx, InternalPrefix+ns)
}

// ---- leases kept in this process, for drivers without Swapper ----

func (p *portable) acquireLocal(k Key, o Owner, ttl time.Duration) (Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clk.Now()
	var holder *Lease
	if cur, ok := p.held[k]; ok {
		holder = &cur
	}
	if held := decide(holder, o, now); held != nil {
		return Lease{}, held
	}
	l := Lease{Key: k, Owner: o, ExpiresAt: now.Add(ttl), TakenOver: holder != nil && holder.Owner.Token != o.Token}
	p.held[k] = l
	return l, nil
}

func (p *portable) renewLocal(l Lease, ttl time.Duration) (Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur, ok := p.held[l.Key]
	if !ok || cur.Owner.Token != l.Owner.Token {
		return Lease{}, lost(l)
	}
	cur.ExpiresAt, cur.TakenOver = p.clk.Now().Add(ttl), false
	p.held[l.Key] = cur
	return cur, nil
}

func (p *portable) releaseLocal(l Lease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.held[l.Key]; ok && cur.Owner.Token == l.Owner.Token {
		delete(p.held, l.Key)
	}
}

func (p *portable) leasesLocal(ns string) iter.Seq2[Lease, error] {
	p.mu.Lock()
	now := p.clk.Now()
	var ls []Lease
	for k, l := range p.held {
		if k.Namespace == ns && now.Before(l.ExpiresAt) {
			ls = append(ls, l)
		}
	}
	p.mu.Unlock()
	return func(yield func(Lease, error) bool) {
		for _, l := range ls {
			if !yield(l, nil) {
				return
			}
		}
	}
}

func (p *portable) releaseAllLocal(ns string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k := range p.held {
		if k.Namespace == ns {
			delete(p.held, k)
			n++
		}
	}
	return n
}

// ---- many leases at once ----

var _ LeaseBatcher = (*portable)(nil)

// AcquireMany implements LeaseBatcher. Over a SwapBatcher it creates every lease
// record that is absent in one round trip, reads the records it found in one more and
// decides each by the lease rule: a live lease of another owner is reported held at
// once, and only a lease to take over (expired, or o's own) goes through Acquire's
// read-and-swap, one key at a time. Other drivers take the leases one at a time, in
// order.
func (p *portable) AcquireMany(ctx context.Context, ks []Key, o Owner, ttl time.Duration) ([]Lease, []error, error) {
	for _, k := range ks {
		if err := p.checkLease(ctx, k, o, ttl); err != nil {
			return nil, nil, err
		}
	}
	ls, errs := make([]Lease, len(ks)), make([]error, len(ks))
	sb, batched := p.d.(SwapBatcher)
	if !batched || p.swapper == nil || len(ks) < 2 {
		for i, k := range ks {
			ls[i], errs[i] = p.Acquire(ctx, k, o, ttl)
		}
		return ls, errs, nil
	}
	now := p.clk.Now()
	rks, nexts, es := make([]Key, len(ks)), make([]*Entry, len(ks)), make([]Entry, len(ks))
	var lk leaseKeys
	var lc leaseCodec
	for i, k := range ks {
		ls[i] = Lease{Key: k, Owner: o, ExpiresAt: now.Add(ttl)}
		es[i] = Entry{Value: lc.encode(ls[i]), StoredAt: now}
		rks[i], nexts[i] = lk.key(k), &es[i]
	}
	var slow []int // keys for Acquire's own protocol
	swapped, err := sb.SwapMany(ctx, rks, make([][]byte, len(ks)), nexts)
	if err != nil {
		// Some records may have been created: Acquire takes o's own lease again.
		slow = indexes(len(ks))
	} else {
		var found []int
		for i, ok := range swapped {
			if !ok {
				ls[i] = Lease{}
				found = append(found, i)
			}
		}
		if len(found) > 0 {
			fks := make([]Key, len(found))
			for j, i := range found {
				fks[j] = rks[i]
			}
			es, gerrs, err := GetMany(ctx, p.d, fks)
			now := p.clk.Now()
			for j, i := range found {
				if err != nil || gerrs[j] != nil {
					slow = append(slow, i) // gone meanwhile, unreadable, or not read
					continue
				}
				h, derr := decodeLease(ks[i], es[j].Value)
				if derr != nil {
					slow = append(slow, i)
					continue
				}
				if held := decide(&h, o, now); held != nil {
					errs[i] = held
					continue
				}
				slow = append(slow, i) // expired, or o's own: taken over by compare-and-swap
			}
		}
	}
	for _, i := range slow {
		ls[i], errs[i] = p.Acquire(ctx, ks[i], o, ttl)
	}
	return ls, errs, nil
}

// ReleaseMany implements LeaseBatcher. Over a SwapBatcher it deletes every lease
// record that is still exactly the lease released, by compare-and-swap, in one round
// trip, and releases the others (renewed under another expiry, taken over, gone) as
// Release does; other drivers release one lease at a time, concurrently.
func (p *portable) ReleaseMany(ctx context.Context, ls []Lease) ([]error, error) {
	for _, l := range ls {
		if err := p.check(ctx, l.Key); err != nil {
			return nil, err
		}
		if err := checkOwner(l.Owner); err != nil {
			return nil, err
		}
	}
	errs := make([]error, len(ls))
	sb, batched := p.d.(SwapBatcher)
	if !batched || p.swapper == nil || len(ls) < 2 {
		Each(len(ls), maxFallbackParallel, func(i int) { errs[i] = p.Release(ctx, ls[i]) })
		return errs, ctx.Err()
	}
	rks, olds := make([]Key, len(ls)), make([][]byte, len(ls))
	var lk leaseKeys
	var lc leaseCodec
	for i, l := range ls {
		rks[i], olds[i] = lk.key(l.Key), lc.encode(l)
	}
	swapped, err := sb.SwapMany(ctx, rks, olds, make([]*Entry, len(ls)))
	var rest []int
	for i, l := range ls {
		if err != nil || !swapped[i] {
			rest = append(rest, i)
			continue
		}
		p.changed(l.Key)
	}
	Each(len(rest), maxFallbackParallel, func(j int) { errs[rest[j]] = p.Release(ctx, ls[rest[j]]) })
	return errs, ctx.Err()
}

func indexes(n int) []int {
	is := make([]int, n)
	for i := range is {
		is[i] = i
	}
	return is
}
