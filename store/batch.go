package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Batcher is an optional capability of stores that read and write many entries in one
// round trip (MGET or a pipeline on Redis, IN on SQL, $in on MongoDB, GetMulti on
// memcached). Without it, [GetMany] and [SetMany] fall back to concurrent single
// operations.
type Batcher interface {
	// GetMany reads the entries of ks. es[i] and errs[i] answer ks[i]: errs[i] is nil
	// for an entry, matches ErrNotFound for a miss (and ErrCorrupt for a damaged
	// entry), or is another error for that key alone. err reports a failure of the
	// whole batch, in which case es and errs are nil.
	GetMany(ctx context.Context, ks []Key) (es []Entry, errs []error, err error)
	// SetMany stores es[i] under ks[i] for every i, each atomically as Set does. The
	// batch as a whole need not be atomic. errs[i] reports a failure of ks[i] alone
	// (ErrTooLarge, say); err a failure of the whole batch.
	SetMany(ctx context.Context, ks []Key, es []Entry) (errs []error, err error)
}

// maxFallbackParallel bounds the concurrent single operations of the fallback.
const maxFallbackParallel = 16

// GetMany reads the entries of ks from s in one round trip when s is a Batcher, and
// with concurrent Gets otherwise. See Batcher.GetMany for the results.
func GetMany(ctx context.Context, s Driver, ks []Key) ([]Entry, []error, error) {
	if b, ok := s.(Batcher); ok {
		return b.GetMany(ctx, ks)
	}
	es := make([]Entry, len(ks))
	errs := make([]error, len(ks))
	each(len(ks), func(i int) { es[i], errs[i] = s.Get(ctx, ks[i]) })
	return es, errs, ctx.Err()
}

// SetMany stores es[i] under ks[i] in one round trip when s is a Batcher, and with
// concurrent Sets otherwise. See Batcher.SetMany for the results.
func SetMany(ctx context.Context, s Driver, ks []Key, es []Entry) ([]error, error) {
	if b, ok := s.(Batcher); ok {
		return b.SetMany(ctx, ks, es)
	}
	return SetEach(ctx, s, ks, es)
}

// SetEach stores es[i] under ks[i] with concurrent Sets, a bounded number at once. It
// is SetMany's fallback, and the SetMany of a Batcher whose engine batches reads but
// has no multi-write (memcached's text protocol, or one upsert per key on SQL).
func SetEach(ctx context.Context, d Driver, ks []Key, es []Entry) ([]error, error) {
	if len(ks) != len(es) {
		return nil, fmt.Errorf("store: SetMany of %d keys and %d entries; pass one entry per key", len(ks), len(es))
	}
	errs := make([]error, len(ks))
	each(len(ks), func(i int) { errs[i] = d.Set(ctx, ks[i], es[i]) })
	return errs, ctx.Err()
}

// each runs fn(0..n-1) with at most maxFallbackParallel running at once.
func each(n int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxFallbackParallel)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// SwapBatcher is an optional capability of [Swapper] drivers that apply many swaps in
// one round trip (a pipeline of the swap script on Redis, split by slot on a cluster).
// The portable layer uses it to take and give up the calculation leases of a batch's
// missing keys in one round trip rather than one per key ([AcquireMany],
// [ReleaseMany]). Without it, leases are taken one at a time, in the order given.
type SwapBatcher interface {
	// SwapMany applies Swap(ks[i], olds[i], nexts[i]) for every i, each atomically as
	// Swap does, in order; the batch as a whole need not be atomic. swapped[i]
	// reports whether ks[i] was swapped. When it returns an error, any of the swaps
	// may or may not have happened.
	SwapMany(ctx context.Context, ks []Key, olds [][]byte, nexts []*Entry) (swapped []bool, err error)
}

// LeaseBatcher is an optional capability of Stores that take and release many
// calculation leases at once. Every Store that [Adapt] returns has it: in one round
// trip over a [SwapBatcher] driver, one lease at a time otherwise.
type LeaseBatcher interface {
	// AcquireMany is Acquire for each of ks, taken in the order of ks: ls[i] and
	// errs[i] answer ks[i] as Acquire would (a *HeldError when another owner holds
	// it). err reports a failure of the whole call, a bad key or owner, say.
	AcquireMany(ctx context.Context, ks []Key, o Owner, ttl time.Duration) (ls []Lease, errs []error, err error)
	// ReleaseMany is Release for each of ls; errs[i] answers ls[i].
	ReleaseMany(ctx context.Context, ls []Lease) (errs []error, err error)
}

// AcquireMany takes the calculation leases of ks for o, in the order of ks: in one
// round trip when s is a [LeaseBatcher] whose driver can, one Acquire at a time
// otherwise. See LeaseBatcher.AcquireMany for the results. Callers that take many
// leases pass ks sorted, so that no two of them can each wait for the other.
func AcquireMany(ctx context.Context, s Store, ks []Key, o Owner, ttl time.Duration) ([]Lease, []error, error) {
	if b, ok := s.(LeaseBatcher); ok {
		return b.AcquireMany(ctx, ks, o, ttl)
	}
	ls, errs := make([]Lease, len(ks)), make([]error, len(ks))
	for i, k := range ks {
		ls[i], errs[i] = s.Acquire(ctx, k, o, ttl)
	}
	return ls, errs, nil
}

// ReleaseMany releases ls: in one round trip when s is a [LeaseBatcher] whose driver
// can, with concurrent Releases otherwise (releases need no order: nobody waits while
// holding one).
func ReleaseMany(ctx context.Context, s Store, ls []Lease) ([]error, error) {
	if b, ok := s.(LeaseBatcher); ok {
		return b.ReleaseMany(ctx, ls)
	}
	errs := make([]error, len(ls))
	each(len(ls), func(i int) { errs[i] = s.Release(ctx, ls[i]) })
	return errs, ctx.Err()
}
