package store

import (
	"context"
	"iter"
	"sync"
	"sync/atomic"
	"time"
)

// Driver is the required part of the store contract: the four methods every engine
// has. Everything else a store can do is an optional capability, declared by
// implementing the interface that names it ([Lister], [Clearer], [Swapper], [Notifier], [Batcher],
// [Expirer], [Versioner], [ProcessLocal], ...), with a fallback in this package or in
// cachier where one can exist. [Adapt] turns a Driver into the [Store] cachier uses.
//
// A driver may assume that keys are valid ([Key.Validate]), that contexts are live when
// a call starts, and that its records are only ever reached through the portable layer:
// Adapt checks both before every call. A driver must accept namespaces of up to
// MaxNamespaceLen+1 bytes, whose first byte may be 0x01: the portable layer keeps its
// lease and counter records there ([InternalPrefix]).
type Driver interface {
	// Get returns the entry for k, or an error matching ErrNotFound.
	Get(ctx context.Context, k Key) (Entry, error)
	// Set stores e under k, replacing any entry, atomically: a concurrent Get sees
	// the old entry or the new one, never a mix.
	Set(ctx context.Context, k Key, e Entry) error
	// Delete removes the entry for k. Deleting a missing entry returns nil.
	Delete(ctx context.Context, k Key) error
	// Close releases the driver's own resources.
	Close() error
}

// Clearer is an optional capability of drivers that can remove every entry of a
// namespace at once. A [Lister] is one; a driver that cannot enumerate its keys
// (memcached) may still be one. Without it, Clear and ReleaseAll return an error
// matching errors.ErrUnsupported.
type Clearer interface {
	// Clear removes every entry of the namespace.
	Clear(ctx context.Context, namespace string) error
}

// Lister is an optional capability of drivers that can enumerate and bulk-remove
// entries, for the command line and for cleanup. Without it, listing, DeleteBefore
// and Leases return an error matching errors.ErrUnsupported, and ReleaseAll of a
// [Clearer] releases without counting.
type Lister interface {
	Clearer
	// Entries lists the entries of the namespace, in no particular order.
	Entries(ctx context.Context, namespace string) iter.Seq2[Info, error]
	// Namespaces lists the namespaces that have entries.
	Namespaces(ctx context.Context) ([]string, error)
	// DeleteBefore removes the entries of the namespace stored before t and returns
	// how many it removed.
	DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error)
}

// Swapper is an optional capability of drivers that can change one record atomically,
// across every process that shares the engine: create-if-absent and compare-and-swap.
// It is all the portable layer needs to give calculation leases that hold across
// processes (and machines); without it, leases are kept in this process only, and a
// store shared by several processes computes a missing key once per process.
type Swapper interface {
	// Swap replaces the entry at k by next, atomically, if and only if k's current
	// value is old byte for byte; old == nil means k must have no entry (create if
	// absent), and next == nil deletes k. It reports whether it swapped: false with a
	// nil error means the current state was not old, and nothing changed.
	Swap(ctx context.Context, k Key, old []byte, next *Entry) (swapped bool, err error)
}

// Expirer is an optional marker of drivers whose engine drops an entry by itself once
// its Entry.ExpiresAt has passed (Redis EXPIRE, memcached exptime, a MongoDB TTL
// index). Other drivers keep ExpiresAt with the entry and cachier treats a read past it
// as a miss.
type Expirer interface {
	// ExpiresNatively reports whether Set honours Entry.ExpiresAt in the engine.
	ExpiresNatively() bool
}

// ProcessLocal is an optional marker of drivers whose records no other process can
// see (an in-memory map). cachier's single flight already makes a computation the only
// one in the process, so it takes no calculation lease on such a store. It is a fact
// about sharing, separate from [LiveStore] (which is about keeping decoded values): a
// tiered store may keep decoded values and still need cross-process leases.
type ProcessLocal interface {
	// ProcessLocal reports whether the driver's records are seen by this process only.
	ProcessLocal() bool
}

// ReadOrAcquirer is an optional capability of drivers that can, in one round trip,
// read an entry and some records beside it and create a record if it is absent (a
// Redis script, one SQL transaction). The portable layer uses it so that a miss learns
// "missing, and the lease is yours" (and the counters the entry depends on) in one
// round trip. Without it, that is a batched read, then the lease protocol over Swap.
type ReadOrAcquirer interface {
	// GetAndCreate reads k and every key of also, and creates rec at rk if rk has no
	// entry, atomically with respect to Swaps on rk. See [GetAndCreateResult]. The
	// error reports a failure of the whole call; a failure to read k alone is in
	// the result's GetErr. The keys of also are records of the portable layer (see
	// [CounterRecord]); rk is a lease record, kept like any other record.
	GetAndCreate(ctx context.Context, k Key, also []Key, rk Key, rec Entry) (GetAndCreateResult, error)
}

// GetOrCreator is an optional capability of a [ReadOrAcquirer]: the conditional
// form of GetAndCreate, for a read that is a hit most of the time. The portable layer
// uses it for [Claimer.ReadOrClaim], the first read of a call: a hit then costs one
// round trip and writes nothing, and a miss learns "missing, and the lease is yours"
// in that same round trip, so that a miss costs two round trips in all (this call,
// then [WriteAndReleaser.SetAndDelete]). A driver implements it where the condition
// fits in one round trip (a Redis script, one SQL statement); without it, ReadOrClaim
// is the batched read and the lease protocol over Swap, and cachier keeps a plain Get
// as its first read.
type GetOrCreator interface {
	// GetOrCreate is GetAndCreate that creates rec at rk only if k has no entry: no
	// record, or one whose ExpiresAt is set and not after rec.StoredAt (the portable
	// layer's now). When k has an entry it writes nothing, Created is false, and Cur
	// is rk's value or nil (rk need not be read then). A driver may count as an entry any record it
	// holds at k (one that reads as corrupt, say): the portable layer then reports
	// the lease as not tried. When k has none it is GetAndCreate, atomically with
	// respect to Swaps on rk and writes of k: rec is never created while k holds an
	// entry written before the call. An entry written while the call runs may come
	// back with Created true (a driver that creates rec before it reads k, so as to
	// see an entry committed together with the release of rk: sqlstore on
	// PostgreSQL); the portable layer then reports both the entry and the lease, and
	// the caller releases the lease if the entry answers it.
	GetOrCreate(ctx context.Context, k Key, also []Key, rk Key, rec Entry) (GetAndCreateResult, error)
}

// OptionsOf returns *opts, or the zero options when opts is nil: what a driver's
// constructor, which takes its options by pointer, fills in the defaults of.
func OptionsOf[T any](opts *T) T {
	if opts == nil {
		var zero T
		return zero
	}
	return *opts
}

// Init runs a driver's lazy set-up (a bucket, a table, indexes) until it first
// succeeds: one caller runs it while the others wait for it, or for their context,
// and a failure is run again by the next call. The zero Init is ready to use.
type Init struct {
	done atomic.Bool
	mk   sync.Once
	sem  chan struct{} // held while the set-up runs
}

// Do runs f unless a run of f succeeded since the Init was made or Reset.
func (in *Init) Do(ctx context.Context, f func() error) error {
	if in.done.Load() {
		return nil
	}
	in.mk.Do(func() { in.sem = make(chan struct{}, 1) })
	select {
	case in.sem <- struct{}{}:
		defer func() { <-in.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if in.done.Load() {
		return nil
	}
	err := f()
	in.done.Store(err == nil)
	return err
}

// Reset makes the next Do run the set-up again (the bucket was deleted, say).
func (in *Init) Reset() { in.done.Store(false) }

// MaybeGetOrCreator is a [GetOrCreator] whose GetOrCreate is one round trip only as
// configured (sqlstore: on PostgreSQL, with a driver connection that sends two
// statements at once). When GetsOrCreates reports false the portable layer does not
// use GetOrCreate, as if the driver were no GetOrCreator; GetOrCreate must still meet
// its contract if called.
type MaybeGetOrCreator interface {
	GetOrCreator
	// GetsOrCreates reports whether the portable layer should use GetOrCreate. It
	// must not change while the driver is in use.
	GetsOrCreates() bool
}

// AsGetOrCreator returns d as the [GetOrCreator] the portable layer uses, if it uses
// one: d is a GetOrCreator, and, if it is a [MaybeGetOrCreator], GetsOrCreates
// reports true.
func AsGetOrCreator(d Driver) (GetOrCreator, bool) {
	g, ok := d.(GetOrCreator)
	if !ok {
		return nil, false
	}
	if m, ok := d.(MaybeGetOrCreator); ok && !m.GetsOrCreates() {
		return nil, false
	}
	return g, true
}

// CounterRecord returns the record key of version counter name, {InternalPrefix,
// name}, and the value that record holds when the counter is at v: 8 bytes,
// little-endian. A driver without [Versioner] keeps counters as such records; a
// driver that is a Versioner keeps them its own way, and must then answer a key of
// also ([ReadOrAcquirer], [WriteAndReleaser]) whose namespace is exactly
// InternalPrefix with the counter named by its ID, in this layout, or nil when the
// counter was never bumped. Today the portable layer puts only counters in also.
func CounterRecord(name string, v uint64) (Key, []byte) {
	return counterKey(name), encodeCounter(v)
}

// GetAndCreateResult is what [ReadOrAcquirer.GetAndCreate] found.
type GetAndCreateResult struct {
	Entry  Entry    // the entry at k, when GetErr is nil
	GetErr error    // matches ErrNotFound when k has no entry (or ErrCorrupt, ...)
	Also   [][]byte // the value of each key of also, in order; nil for a missing one
	Cur    []byte   // rk's value after the call (rec.Value when Created)
	// Created reports whether rec was written; when false, Cur is the record that
	// was already there.
	Created bool
}

// WriteAndReleaser is an optional capability of drivers that can, in one round trip,
// store an entry, delete a record if its value is still old, and then read some
// records (a Redis script, one SQL transaction). The portable layer uses it to store a
// computed result, give up the lease and read the counters the writer must check
// after its write, in one round trip. Without it, that is Set, the lease protocol
// over Swap, and a batched read.
type WriteAndReleaser interface {
	// SetAndDelete stores e at k, then deletes rk if rk's value is old byte for
	// byte, then reads every key of also (nil for a missing one; counters as
	// [CounterRecord] says), in that order and in one round trip. It reports
	// whether it deleted rk. When it returns an error, any of the three may or may
	// not have happened.
	SetAndDelete(ctx context.Context, k Key, e Entry, rk Key, old []byte, also []Key) (deleted bool, vals [][]byte, err error)
}
