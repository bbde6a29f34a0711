package store

import (
	"context"
	"errors"
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

// IntoBatcher is an optional capability of Batchers that write the answers of a
// batched read into memory the caller provides, which a caller that reads batch
// after batch (cachier's Batch) reuses: at 100 keys, the two slices GetMany returns
// were a warm batch's largest allocation after the values themselves.
type IntoBatcher interface {
	// GetManyInto is GetMany with the answers written to es[i] and errs[i] rather
	// than returned; es and errs have len(ks) elements, each of which it sets. On
	// an error of the whole batch their contents are undefined.
	GetManyInto(ctx context.Context, ks []Key, es []Entry, errs []error) error
}

// GetManyInto reads the entries of ks from s as [GetMany] does, into es and errs
// (len(ks) each): without copies when s is an [IntoBatcher], from GetMany's answers
// otherwise.
func GetManyInto(ctx context.Context, s Driver, ks []Key, es []Entry, errs []error) error {
	if len(es) != len(ks) || len(errs) != len(ks) {
		return fmt.Errorf("store: GetManyInto of %d keys into %d entries and %d errors; pass one of each per key", len(ks), len(es), len(errs))
	}
	if b, ok := s.(IntoBatcher); ok {
		return b.GetManyInto(ctx, ks, es, errs)
	}
	res, rerrs, err := GetMany(ctx, s, ks)
	if err != nil {
		return err
	}
	if len(res) != len(ks) || len(rerrs) != len(ks) {
		return fmt.Errorf("store: GetMany returned %d entries and %d errors for %d keys", len(res), len(rerrs), len(ks))
	}
	copy(es, res)
	copy(errs, rerrs)
	return nil
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
	Each(len(ks), maxFallbackParallel, func(i int) { es[i], errs[i] = s.Get(ctx, ks[i]) })
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
	Each(len(ks), maxFallbackParallel, func(i int) { errs[i] = d.Set(ctx, ks[i], es[i]) })
	return errs, ctx.Err()
}

// Each runs f(0) to f(n-1), at most limit of them at once, and returns when all have
// returned: the fallback batches here, and a driver's per-object requests (s3store).
// One call (n == 1) runs in the caller's goroutine.
func Each(n, limit int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, limit)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// SwapBatcher is an optional capability of [Swapper] drivers that apply many swaps in
// one round trip (one script on one Redis server, a pipeline of the swap script split
// by slot on a cluster).
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
	Each(len(ls), maxFallbackParallel, func(i int) { errs[i] = s.Release(ctx, ls[i]) })
	return errs, ctx.Err()
}

// SetAndDeleteBatcher is an optional capability of [WriteAndReleaser] drivers that
// run many SetAndDeletes in one round trip (one script on one Redis primary). The portable layer uses it for [WriteReleaseBatcher]: a batch's computed
// entries are written, their leases given up and the counters read after the writes,
// all in one round trip.
type SetAndDeleteBatcher interface {
	// SetAndDeleteMany is SetAndDelete(ks[i], es[i], rks[i], olds[i]) for every i,
	// in order, each atomically as SetAndDelete is, followed by a read of every key
	// of also after all the writes; the batch as a whole need not be atomic.
	// deleted[i] reports whether rks[i] was deleted; errs[i] a failure of ks[i]
	// alone (ErrTooLarge: nothing written for it). vals holds also's values as
	// SetAndDelete's do; it is nil when no write was sent. When err is not nil, any
	// of the writes and deletes may or may not have happened.
	SetAndDeleteMany(ctx context.Context, ks []Key, es []Entry, rks []Key, olds [][]byte, also []Key) (deleted []bool, errs []error, vals [][]byte, err error)
}

// WriteReleaseBatcher is an optional capability of Stores that store many computed
// entries, give up their calculation leases and read some counters after the writes,
// in one call: [MissPath.WriteAndRelease] for a batch. Every Store that [Adapt]
// returns has it: one round trip over a [SetAndDeleteBatcher] driver, otherwise a
// batched write ([SetMany]), [ReleaseMany] and a read of the counters.
type WriteReleaseBatcher interface {
	// WriteAndReleaseMany stores es[i] under ks[i], then releases ls[i] if it is
	// still its owner's (a zero lease, without a token, releases nothing), for every
	// i, then stores markEs[j] under marks[j] for every j, after every write of ks
	// (in the same round trip where the writes of ks are one ordered round trip,
	// after them in another otherwise: a reader that sees a mark's new value sees
	// the writes), then reads the named counters. errs[i] reports a failed write of
	// ks[i] alone and errs[len(ks)+j] one of marks[j], relErrs[i] a failed release
	// of ls[i]; err a failure of the whole call, after which any write or release
	// may or may not have happened (relErrs is then nil: the caller releases the
	// leases again).
	WriteAndReleaseMany(ctx context.Context, ks []Key, es []Entry, ls []Lease, marks []Key, markEs []Entry, counters []string) (errs, relErrs []error, versions []uint64, err error)
}

var _ WriteReleaseBatcher = (*portable)(nil)

// SetAndDeleteSwapBatcher is an optional capability of [SetAndDeleteBatcher] drivers
// that also compare and swap some records after the writes, in the same round trip
// (in the writes' script on one Redis primary).
type SetAndDeleteSwapBatcher interface {
	// SetAndDeleteManySwap is SetAndDeleteMany followed, after every write of ks, by
	// Swap(sks[j], solds[j], &ses[j]) for every j; swapped[j] reports each swap. A
	// swap that ran before the writes (a write sent again) reports false. When no
	// write was sent, no swap is either.
	SetAndDeleteManySwap(ctx context.Context, ks []Key, es []Entry, rks []Key, olds [][]byte, also []Key, sks []Key, solds [][]byte, ses []Entry) (deleted []bool, errs []error, vals [][]byte, swapped []bool, err error)
}

// WriteReleaseSwapBatcher is an optional capability of Stores: [WriteReleaseBatcher]
// whose marks move by compare-and-swap. Every Store that [Adapt] returns has it; it
// works over a [Swapper] driver (errors.ErrUnsupported otherwise), in the same round
// trip as the writes over a [SetAndDeleteSwapBatcher] one.
type WriteReleaseSwapBatcher interface {
	// WriteAndReleaseManySwap is WriteAndReleaseMany where marks[j] becomes
	// markEs[j] only if its value is markOlds[j] byte for byte (nil: no entry),
	// atomically, after every write of ks; swapped[j] reports whether it did. A mark
	// not swapped keeps what it held: the caller decides what to do.
	WriteAndReleaseManySwap(ctx context.Context, ks []Key, es []Entry, ls []Lease, marks []Key, markOlds [][]byte, markEs []Entry, counters []string) (errs, relErrs []error, versions []uint64, swapped []bool, err error)
}

var _ WriteReleaseSwapBatcher = (*portable)(nil)

// WriteAndReleaseMany implements [WriteReleaseBatcher].
func (p *portable) WriteAndReleaseMany(ctx context.Context, ks []Key, es []Entry, ls []Lease, marks []Key, markEs []Entry, counters []string) ([]error, []error, []uint64, error) {
	errs, relErrs, vs, _, err := p.writeAndReleaseMany(ctx, ks, es, ls, marks, nil, markEs, counters, false)
	return errs, relErrs, vs, err
}

// WriteAndReleaseManySwap implements [WriteReleaseSwapBatcher].
func (p *portable) WriteAndReleaseManySwap(ctx context.Context, ks []Key, es []Entry, ls []Lease, marks []Key, markOlds [][]byte, markEs []Entry, counters []string) ([]error, []error, []uint64, []bool, error) {
	if len(markOlds) != len(marks) {
		return nil, nil, nil, nil, fmt.Errorf("store: WriteAndReleaseManySwap of %d marks and %d old values; pass one old value per mark", len(marks), len(markOlds))
	}
	if p.swapper == nil {
		return nil, nil, nil, nil, fmt.Errorf("store: WriteAndReleaseManySwap: %w (the driver does not implement store.Swapper)", errors.ErrUnsupported)
	}
	return p.writeAndReleaseMany(ctx, ks, es, ls, marks, markOlds, markEs, counters, true)
}

// writeAndReleaseMany is WriteAndReleaseMany, whose marks move by compare-and-swap
// from markOlds when swap is set.
func (p *portable) writeAndReleaseMany(ctx context.Context, ks []Key, es []Entry, ls []Lease, marks []Key, markOlds [][]byte, markEs []Entry, counters []string, swap bool) ([]error, []error, []uint64, []bool, error) {
	if len(ks) != len(es) || len(ks) != len(ls) {
		return nil, nil, nil, nil, fmt.Errorf("store: WriteAndReleaseMany of %d keys, %d entries and %d leases; pass one of each per key", len(ks), len(es), len(ls))
	}
	if len(marks) != len(markEs) {
		return nil, nil, nil, nil, fmt.Errorf("store: WriteAndReleaseMany of %d marks and %d entries; pass one entry per mark", len(marks), len(markEs))
	}
	swapped := make([]bool, len(marks))
	// swapMarks swaps the marks one by one, after the writes.
	swapMarks := func() []error {
		merrs := make([]error, len(marks))
		for j, k := range marks {
			swapped[j], merrs[j] = p.swapper.Swap(ctx, k, markOlds[j], &markEs[j])
			p.changed(k)
		}
		return merrs
	}
	if err := p.checkNS(ctx, "-"); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := validateKeys(ks); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := validateKeys(marks); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := p.checkCounters(ctx, counters); err != nil {
		return nil, nil, nil, nil, err
	}
	for i, l := range ls {
		if l.Owner.Token == "" {
			continue
		}
		if l.Key != ks[i] {
			return nil, nil, nil, nil, fmt.Errorf("store: WriteAndReleaseMany of %s with the lease of %s", ks[i], l.Key)
		}
		if err := checkOwner(l.Owner); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	relErrs := make([]error, len(ls))
	if sb, ok := p.d.(SetAndDeleteBatcher); ok && p.war != nil && p.swapper != nil && len(ks) > 0 {
		n := len(ks) + len(marks)
		rks, olds := make([]Key, n), make([][]byte, n)
		also := make([]Key, len(counters))
		for i, n := range counters {
			also[i] = counterKey(n)
		}
		var lk leaseKeys
		var lc leaseCodec
		for i, k := range ks {
			// Without a lease, a value no lease record has: nothing is deleted.
			rks[i], olds[i] = lk.key(k), noLease
			if ls[i].Owner.Token != "" {
				olds[i] = lc.encode(ls[i])
			}
		}
		wks, wes := ks, es
		if swap {
			// The marks are swapped after the writes: in the same round trip where the
			// driver can (after them, in its script on Redis), otherwise in one of their own.
			var deleted []bool
			var errs []error
			var vals [][]byte
			var err error
			if ssb, ok := sb.(SetAndDeleteSwapBatcher); ok {
				deleted, errs, vals, swapped, err = ssb.SetAndDeleteManySwap(ctx, ks, es, rks[:len(ks)], olds[:len(ks)], also, marks, markOlds, markEs)
				for _, k := range marks {
					p.changed(k)
				}
				errs = append(errs, make([]error, len(marks))...)
			} else {
				deleted, errs, vals, err = sb.SetAndDeleteMany(ctx, ks, es, rks[:len(ks)], olds[:len(ks)], also)
				if err == nil {
					errs = append(errs, swapMarks()...)
				}
			}
			for _, k := range ks {
				p.changed(k)
			}
			if err != nil {
				return nil, nil, nil, nil, err
			}
			vs, err := p.afterWriteAndRelease(ctx, ls, deleted, relErrs, counters, also, vals)
			return errs, relErrs, vs, swapped, err
		}
		if len(marks) > 0 {
			// The marks are written last, in the same ordered round trip (on Redis,
			// by the same script), after every write of ks; they hold no lease.
			wks = append(append(make([]Key, 0, n), ks...), marks...)
			wes = append(append(make([]Entry, 0, n), es...), markEs...)
			for j, k := range marks {
				rks[len(ks)+j], olds[len(ks)+j] = lk.key(k), noLease
			}
		}
		deleted, errs, vals, err := sb.SetAndDeleteMany(ctx, wks, wes, rks, olds, also)
		for _, k := range wks {
			p.changed(k)
		}
		if err != nil {
			return nil, nil, nil, nil, err
		}
		vs, err := p.afterWriteAndRelease(ctx, ls, deleted, relErrs, counters, also, vals)
		return errs, relErrs, vs, swapped, err
	}
	errs, err := p.SetMany(ctx, ks, es)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if swap {
		// After SetMany returned, every write of ks is done: the marks follow them.
		errs = append(errs, swapMarks()...)
	} else if len(marks) > 0 {
		// After SetMany returned, every write of ks is done: the marks follow them.
		merrs, err := p.SetMany(ctx, marks, markEs)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		errs = append(errs, merrs...)
	}
	var held []Lease
	var at []int
	for i, l := range ls {
		if l.Owner.Token != "" {
			held, at = append(held, l), append(at, i)
		}
	}
	if len(held) > 0 {
		rerrs, err := p.ReleaseMany(ctx, held)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		for j, i := range at {
			relErrs[i] = rerrs[j]
		}
	}
	if len(counters) == 0 {
		return errs, relErrs, []uint64{}, swapped, nil
	}
	vs, err := p.Versions(ctx, counters)
	return errs, relErrs, vs, swapped, err
}

// afterWriteAndRelease releases the leases a SetAndDeleteMany did not delete as it
// wrote (renewed since, taken over, released) and returns the counters it read
// after the writes (vals, of also), or reads them when nothing was written.
func (p *portable) afterWriteAndRelease(ctx context.Context, ls []Lease, deleted []bool, relErrs []error, counters []string, also []Key, vals [][]byte) ([]uint64, error) {
	var rest []int
	for i, l := range ls {
		if l.Owner.Token != "" && !deleted[i] {
			rest = append(rest, i)
		}
	}
	Each(len(rest), maxFallbackParallel, func(j int) { relErrs[rest[j]] = p.Release(ctx, ls[rest[j]]) })
	switch {
	case len(counters) == 0:
		return []uint64{}, nil
	case vals == nil: // nothing was written
		return p.Versions(ctx, counters)
	case len(vals) != len(also):
		return nil, fmt.Errorf("store: SetAndDeleteMany returned %d records for %d keys", len(vals), len(also))
	default:
		return recordValues(counters, vals)
	}
}

// VersionedBatcher is an optional capability of Stores that read many entries and
// some version counters at once: [Batcher.GetMany] and [Versioner.Versions] in one
// call. Every Store that [Adapt] returns has it: one batched read (one MGET on Redis)
// when the driver keeps the counters as records, GetMany then Versions when it keeps
// them its own way (a [Versioner] driver).
type VersionedBatcher interface {
	// GetManyVersioned reads the entries of ks as GetMany does, and the named
	// counters: vs, or verr when they could not be read. err reports a failure of
	// the whole call, in which case nothing else is returned.
	GetManyVersioned(ctx context.Context, ks []Key, names []string) (es []Entry, errs []error, vs []uint64, verr error, err error)
}

var _ VersionedBatcher = (*portable)(nil)

// GetManyVersioned implements [VersionedBatcher].
func (p *portable) GetManyVersioned(ctx context.Context, ks []Key, names []string) ([]Entry, []error, []uint64, error, error) {
	if err := p.checkCounters(ctx, names); err != nil {
		return nil, nil, nil, nil, err
	}
	if p.versioner != nil || len(names) == 0 {
		es, errs, err := p.GetMany(ctx, ks)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		vs, verr := []uint64{}, error(nil)
		if len(names) > 0 {
			vs, verr = p.Versions(ctx, names)
		}
		return es, errs, vs, verr, nil
	}
	if err := p.checkNS(ctx, "-"); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := validateKeys(ks); err != nil {
		return nil, nil, nil, nil, err
	}
	all := make([]Key, 0, len(ks)+len(names))
	all = append(all, ks...)
	for _, n := range names {
		all = append(all, counterKey(n))
	}
	es, errs, err := GetMany(ctx, p.d, all)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	n := len(ks)
	p.unexpiredMany(ks, es[:n], errs[:n])
	vs, verr := counters(names, es[n:], errs[n:])
	return es[:n:n], errs[:n:n], vs, verr, nil
}
