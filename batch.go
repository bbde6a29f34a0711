package cachier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/internal/flight"
	"github.com/cachier-go/cachier/internal/tier"
	"github.com/cachier-go/cachier/store"
)

// ErrNoResult is returned by Batch.CallOne when the batch function returned no
// result for the argument (it is absent from the map it returned), or when a "not
// found" record kept by CacheMissing says so.
var ErrNoResult = errors.New("cachier: the batch function returned no result for the argument")

// errMissingRecord is what decode returns for a "not found" record (CacheMissing):
// a Batch reads it as an absent result, a plain Func sharing the namespace as a miss.
var errMissingRecord = errors.New("cachier: a \"not found\" record, not a value")

// batchSettings are the options only WrapBatch accepts.
type batchSettings struct {
	missingTTL time.Duration // CacheMissing; 0: absent results are not remembered
	window     time.Duration // RefreshCoalesce; 0: each call's stale keys refresh together
	maxBatch   int           // RefreshCoalesce; 0: no limit
}

// CacheMissing makes a Batch remember, for ttl, that the batch function returned no
// result for an argument (sturdyc's missing-record storage): until the record goes
// stale, calls for that argument answer "not found" (the argument is absent from the
// map; CallOne returns ErrNoResult) without calling the function. Without it, an
// argument the function does not return is asked for again on the next call. The
// record obeys invalidation like any entry, and NextTime serves it stale while it is
// refreshed. Only accepted by WrapBatch.
func CacheMissing(ttl time.Duration) Option {
	return opt("CacheMissing", inBatch, func(s *settings) error {
		if ttl <= 0 {
			return fmt.Errorf("TTL %v is not positive; omit CacheMissing to compute absent results again on every call", ttl)
		}
		s.batch.missingTTL = ttl
		return nil
	})
}

// RefreshCoalesce gathers the background refreshes of stale entries (NextTime) that
// fall due within window of each other into one call of the batch function, of at
// most maxBatch arguments (0: no limit), like sturdyc's refresh coalescing. The first
// stale key starts the window; a batch that reaches maxBatch leaves at once. Without
// it, the stale arguments of each call are refreshed together, in one call of the
// function, as soon as they are served. Only accepted by WrapBatch.
func RefreshCoalesce(window time.Duration, maxBatch int) Option {
	return opt("RefreshCoalesce", inBatch, func(s *settings) error {
		if window <= 0 {
			return fmt.Errorf("window %v is not positive", window)
		}
		if maxBatch < 0 {
			return fmt.Errorf("negative batch size %d; use 0 for no limit", maxBatch)
		}
		s.batch.window, s.batch.maxBatch = window, maxBatch
		return nil
	})
}

// Batch is a memoized batch function: it computes the results of many arguments in
// one call, and keeps one entry per argument. Create one with WrapBatch; it is safe
// for concurrent use.
//
// A Batch and a Func wrapped with the same Name, Version and key options share
// entries: a result that one computed is a hit for the other.
type Batch[A comparable, R any] struct {
	f  *Func[A, R] // keys, settings, stats and management, shared with single calls
	fn func(context.Context, []A) (map[A]R, error)
	bs batchSettings

	refresh coalescer[A]

	// finds keeps Call's per-key memory (*callBufs[A, R]) between calls: at 100
	// keys it was most of what a warm batch allocated besides the values, and every
	// byte allocated is paid again in garbage collection.
	finds sync.Pool
}

// lookupBufs is the per-key memory of one lookupMany, zeroed while pooled.
type lookupBufs[R any] struct {
	hs      []found[R]
	missing []bool
	ks      []store.Key   // the keys read from the store
	es      []store.Entry // and what it answered (store.GetManyInto)
	errs    []error
	lives   []any          // and, in memory (tier.Source), the live values
	tickets []*tier.Ticket // and their tickets
	iota    []int          // 0, 1, 2, ...: never written past its making
}

// callBufs is the per-key memory of one Call, pooled: its lookup, and the items,
// key index and slots of a call that ends with every key answered from the store
// (nothing computes or refreshes, so nothing holds them after the call). A call
// that hands items or slots to a computation or a refresh keeps them: they are
// detached (nil) before the rest is pooled.
type callBufs[A comparable, R any] struct {
	lookupBufs[R]
	items []batchItem[A]
	byID  map[string]int // items' index by key ID, cleared after items
	byArg map[A]int      // or by argument (groupsByArg), cleared after items
	slots []slot[R]
}

// identity returns 0..n-1 from lb, or newly made when lb is nil. Callers only read it.
func (lb *lookupBufs[R]) identity(n int) []int {
	if lb == nil {
		return indexes(n)
	}
	if len(lb.iota) < n {
		lb.iota = indexes(n)
	}
	return lb.iota[:n:n]
}

// maxPooledLookup bounds the batches whose lookup memory is pooled, so that one huge
// batch does not pin its memory.
const maxPooledLookup = 4096

// getBufs returns zeroed call memory for n arguments, or nil when n is too large to
// pool.
func (b *Batch[A, R]) getBufs(n int) *callBufs[A, R] {
	if n > maxPooledLookup {
		return nil
	}
	if cb, _ := b.finds.Get().(*callBufs[A, R]); cb != nil && cap(cb.hs) >= n {
		return cb
	}
	return &callBufs[A, R]{lookupBufs: lookupBufs[R]{hs: make([]found[R], 0, n), missing: make([]bool, 0, n)}}
}

// putBufs zeroes what a call used of cb (it holds results and keys) and pools it.
// Items and slots still in use elsewhere must have been detached (set to nil).
func (b *Batch[A, R]) putBufs(cb *callBufs[A, R]) {
	if cb == nil {
		return
	}
	// Each slice's length is what the call used of it.
	clear(cb.hs)
	clear(cb.missing)
	clear(cb.ks)
	clear(cb.es)
	clear(cb.errs)
	clear(cb.lives)
	clear(cb.tickets)
	clear(cb.items)
	clear(cb.slots)
	b.finds.Put(cb)
}

// WrapBatch memoizes a batch function: fn returns the results of the arguments it is
// given, as a map from argument to result. An argument fn leaves out of the map has no
// result ("not found"); see CacheMissing. Keys it adds that it was not asked for are
// ignored.
//
// WrapBatch takes the options of Wrap, which mean the same, plus the batch options
// (CacheMissing, RefreshCoalesce). The namespace is fn's qualified name unless Name
// says otherwise, and each argument's key is derived exactly as Wrap derives it, so
// that a Func of the same name shares the entries.
func WrapBatch[A comparable, R any](fn func(context.Context, []A) (map[A]R, error), opts ...Option) (*Batch[A, R], error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil function", ErrOption)
	}
	var (
		bs       = defaultSettings()
		wrapOpts []Option
	)
	for _, o := range opts {
		if o.scope == inBatch {
			if err := applyAll(&bs, inBatch, []Option{o}); err != nil {
				return nil, err
			}
			continue
		}
		wrapOpts = append(wrapOpts, o)
	}
	one := func(ctx context.Context, a A) (R, error) {
		m, err := fn(ctx, []A{a})
		if err != nil {
			return *new(R), err
		}
		v, ok := m[a]
		if !ok {
			return v, ErrNoResult
		}
		return v, nil
	}
	f, err := wrap(one, fn, wrapOpts)
	if err != nil {
		return nil, err
	}
	return &Batch[A, R]{f: f, fn: fn, bs: bs.batch}, nil
}

// Namespace returns the namespace of the entries.
func (b *Batch[A, R]) Namespace() string { return b.f.Namespace() }

// Close is Func.Close for a Batch: it waits for the batch's background refreshes and
// for the computations in flight in this process to store their results, or for ctx
// to be done, then releases every calculation lease the batch still holds, and stops
// its local tier. After Close, Call and Refresh run the function directly and touch
// no store; Precache, Invalidate, Clear and ClearBeingCalculated return ErrClosed.
// Close never closes the store.
func (b *Batch[A, R]) Close(ctx context.Context) error { return b.f.Close(ctx) }

// Dependencies returns the version counters the entries depend on through DependsOn,
// so that a Batch can be a Parent.
func (b *Batch[A, R]) Dependencies() []string { return b.f.Dependencies() }

// Stats returns what the batch function did since it was wrapped, counted per
// argument, not per batch: a batch of 100 arguments with 90 hits adds 90 Hits, 10
// Misses and, if it computed them, 10 Computations. ComputeTime and ComputeLatency
// record each run of the batch function once.
func (b *Batch[A, R]) Stats() Stats { return b.f.Stats() }

// Key returns the store key of arg.
func (b *Batch[A, R]) Key(arg A) (store.Key, error) { return b.f.Key(arg) }

// Invalidate removes the result for each of args, in every process sharing the
// store.
func (b *Batch[A, R]) Invalidate(ctx context.Context, args ...A) error {
	for _, a := range args {
		if err := b.f.Invalidate(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// InvalidateTags drops every entry carrying a tag that TagsOf computes for arg.
func (b *Batch[A, R]) InvalidateTags(ctx context.Context, arg A) error {
	return b.f.InvalidateTags(ctx, arg)
}

// InvalidatePrefix drops every entry under the prefix that Prefix computes for arg.
func (b *Batch[A, R]) InvalidatePrefix(ctx context.Context, arg A) error {
	return b.f.InvalidatePrefix(ctx, arg)
}

// Precache stores value as the result for arg without calling the function.
func (b *Batch[A, R]) Precache(ctx context.Context, arg A, value R) error {
	return b.f.Precache(ctx, arg, value)
}

// Clear removes every result of the function.
func (b *Batch[A, R]) Clear(ctx context.Context) error { return b.f.Clear(ctx) }

// ClearBeingCalculated releases every calculation lease of the function.
func (b *Batch[A, R]) ClearBeingCalculated(ctx context.Context) error {
	return b.f.ClearBeingCalculated(ctx)
}

// CacheDir returns the directory that holds the entries, and whether the store keeps
// them in one.
func (b *Batch[A, R]) CacheDir() (string, bool) { return b.f.CacheDir() }

// Refresh recomputes the results of args in one call of the function and stores
// them.
func (b *Batch[A, R]) Refresh(ctx context.Context, args []A, opts ...Option) (map[A]R, error) {
	return b.Call(ctx, args, append(opts, Overwrite())...)
}

// CallOne is Call for one argument. It returns ErrNoResult when the function has no
// result for arg.
func (b *Batch[A, R]) CallOne(ctx context.Context, arg A, opts ...Option) (R, error) {
	m, err := b.Call(ctx, []A{arg}, opts...)
	if err != nil {
		return *new(R), err
	}
	v, ok := m[arg]
	if !ok {
		return v, ErrNoResult
	}
	return v, nil
}

// Call returns the results of args, computing those the store has no fresh result for
// in one call of the batch function. opts apply to this call only, as for
// Func.Call.
//
// The results come back as a map, like the function's own, rather than as a slice
// aligned with args: an argument without a result ("not found") is simply absent,
// repeated arguments need no special case, and the shape is the one sturdyc's
// GetOrFetchBatch and otter's BulkGet return.
//
// Step by step:
//
//  1. An argument that the typed first level (memory store) or the local tier
//     (LocalTier) answers costs no store read and no key derivation, under the same
//     rules and for the same calls (without per-call options) as Func.Call; with
//     options, the local tier still answers before the store. The other arguments'
//     entries are read in one batched store read (store.GetMany: MGET on Redis, IN
//     on SQL, $in on MongoDB, GetMulti on memcached, concurrent reads on files and
//     S3), with the freshness, tag, prefix and dependency checks of a single call,
//     per entry; the counters are read in one more round trip only when an entry
//     depends on tags, prefixes or DependsOn.
//  2. Stale entries are served at once under NextTime and refreshed in the background
//     in batches (RefreshCoalesce).
//  3. The others join this process's single flights for their keys (shared with
//     single calls and other batches), or start them. For the keys it started, the
//     call takes the store's calculation leases in key order, never waiting while it
//     holds one, so that no two batches can deadlock: in one round trip where the
//     store can (store.AcquireMany; one script on one Redis server), then one batched read that
//     re-checks their entries and reads the invalidation epoch. It computes the keys
//     it got in one call of the function and writes the results, releases their
//     leases and reads the epoch again in one more round trip where the store can
//     (store.WriteReleaseBatcher; four round trips in all on one Redis server),
//     moving the local tiers' marker once, as a single write does; then it waits
//     for the keys other processes hold, and computes any whose holder gave up or
//     died. It follows the invalidation epoch
//     as a single call does (see invalidation.go): a result computed before an
//     Invalidate or Clear is not kept past it, nor taken by a call that began after
//     it and waited for that computation.
//
// Partial failure. If the function fails, every argument it was asked for fails
// with its error, which Call returns (errors.Is works) together with the map of the
// results it could still serve: hits, and results computed by other callers. A store
// that fails for some keys only (a read, a write, a lease) does not fail the call
// unless FailOnStoreError: those keys are computed and returned, not stored, and
// counted in Stats.StoreErrors. If ctx is done while the call waits, Call returns the
// results it has and ctx.Err(); the computation goes on for the others.
func (b *Batch[A, R]) Call(ctx context.Context, args []A, opts ...Option) (map[A]R, error) {
	s, err := b.f.settings(opts)
	if err != nil {
		return nil, err
	}
	var first *resolvedSettings // the first levels answer calls without options only
	if len(opts) == 0 {
		first = b.f.resolved.Load()
	}
	return b.call(ctx, s, args, first)
}

// batchItem is one distinct key of a batch call: the first argument that maps to it
// and the other arguments that do (a WithKey function may map several to one key).
type batchItem[A comparable] struct {
	arg     A
	k       store.Key
	aliases []A // besides arg; nil for most keys
}

// how says how one key of a batch was answered.
type how uint8

const (
	howMiss     how = iota // not answered yet
	howHit                 // a fresh entry
	howStale               // a stale entry served under NextTime
	howComputed            // this call ran the function for it
	howWaited              // another caller's computation answered it
)

// slot is the answer for one key.
type slot[R any] struct {
	v     R
	found bool // false: no result ("not found"), or err
	err   error
	how   how
}

func (b *Batch[A, R]) call(ctx context.Context, s *settings, args []A, first *resolvedSettings) (map[A]R, error) {
	f := b.f
	out := make(map[A]R, len(args))
	if len(args) == 0 {
		return out, nil
	}
	if first != nil && (first.hot || first.local) {
		// The first levels a single call without options looks at (the typed first
		// level on the memory store, else the local tier), under the same rules: a
		// key they answer costs no key derivation and no store read.
		if args = b.firstLevels(first, args, out); len(args) == 0 {
			return out, nil
		}
	}
	if s.skip || disabled.Load() || f.life.isClosed() {
		return b.direct(ctx, s, args, out, &f.stats.skipped, "cachier: batch skipping the cache")
	}
	if f.breaker.open(s.clock) {
		if s.failClosed {
			f.stats.bypassed.Add(uint64(len(args)))
			return nil, fmt.Errorf("%w: %s failed moments ago; not trying it again yet", ErrStore, f.ns)
		}
		return b.direct(ctx, s, args, out, &f.stats.bypassed, "cachier: store failed moments ago; calling the batch function directly")
	}
	cb := b.getBufs(len(args))
	// As a single call's miss: when the typed first level answers the next hits, the
	// digest is not memoized (boxing the argument and the memo's entry).
	items, err := b.items(args, cb, first == nil || !first.hot)
	if err != nil {
		b.putBufs(cb)
		return nil, err
	}
	if s.cleanupEvery > 0 {
		f.maybeCleanup(s)
	}
	var slots []slot[R]
	if cb != nil {
		cb.items = items
		if cap(cb.slots) < len(items) {
			cb.slots = make([]slot[R], len(items))
		}
		slots = cb.slots[:len(items)] // zeroed by putBufs
		cb.slots = slots
	} else {
		slots = make([]slot[R], len(items))
	}
	var misses, stale, ahead []int // ahead: fresh hits due for a refresh ahead (RefreshAhead)
	// The store's write count before the lookup: on a process-local store, a run that
	// ended between the lookup and this call's flights may have stored a result the
	// lookup did not see (computeOwned looks again unless nothing was stored since).
	w0 := writesOf(s.store)
	if s.overwrite {
		misses = indexes(len(items))
	} else {
		var lb *lookupBufs[R]
		if cb != nil {
			lb = &cb.lookupBufs
		}
		hs, missing, err := b.lookupMany(ctx, s, items, lb.identity(len(items)), lb, nil)
		if err != nil {
			b.putBufs(cb)
			return nil, err
		}
		var (
			now  time.Time
			hits uint64
		)
		for i := range items {
			h := &hs[i]
			if h.storedAt.IsZero() {
				if h.corrupt != nil || h.movedBy != "" {
					f.report(s, items[i].k, h)
				}
				misses = append(misses, i)
				continue
			}
			if now.IsZero() {
				now = s.clock.Now()
			}
			limit := s.effectiveLimit(h.ttl)
			if s.expired(&h.foundTimes, now) { // as a miss, like Call's
				f.stats.expired.Add(1)
				misses = append(misses, i)
				continue
			}
			if age := s.age(now, h.storedAt); limit == 0 || (limit > 0 && age < limit) {
				hits++
				slots[i] = slot[R]{v: h.v, found: !missing[i], how: howHit}
				if s.expiry.refreshAhead > 0 && limit > 0 && age >= refreshPoint(items[i].k, h.storedAt, limit, s.expiry.refreshAhead) {
					if f.backoff.allow(items[i].k.ID, now) {
						ahead = append(ahead, i)
					} else {
						f.stats.refreshesBackedOff.Add(1)
					}
				}
				continue
			}
			if s.nextTime {
				f.stats.staleHits.Add(1)
				slots[i] = slot[R]{v: h.v, found: !missing[i], how: howStale}
				if f.backoff.allow(items[i].k.ID, now) {
					stale = append(stale, i)
				} else {
					f.stats.refreshesBackedOff.Add(1) // the last refresh failed moments ago
				}
				continue
			}
			misses = append(misses, i)
		}
		f.stats.hits.Add(hits)
	}
	if cb != nil && (len(misses) > 0 || len(stale) > 0 || len(ahead) > 0) {
		// Computations and refreshes keep items and slots, perhaps past this call:
		// they are theirs now. The lookup memory is not used past here.
		cb.items, cb.slots = nil, nil
		b.putBufs(cb)
		cb = nil
	}
	if len(stale) > 0 {
		b.refreshLater(ctx, s, items, stale)
	}
	if len(ahead) > 0 {
		early := *s
		early.overwrite = true // a fresh entry does not stop this refresh, a newer one does
		b.refreshLater(ctx, &early, items, ahead)
	}
	f.stats.misses.Add(uint64(len(misses)))
	var start time.Time
	if s.verbose {
		start = s.clock.Now()
	}
	err = b.compute(ctx, s, items, misses, slots, w0)
	var errs []error
	for i, it := range items {
		sl := &slots[i]
		switch {
		case sl.err != nil:
			if !slices.ContainsFunc(errs, func(e error) bool { return e == sl.err }) {
				errs = append(errs, sl.err)
			}
		case sl.found:
			out[it.arg] = sl.v
			for _, a := range it.aliases {
				out[a] = sl.v
			}
		}
	}
	if s.verbose {
		b.traceBatch(s, len(args), slots, s.clock.Now().Sub(start))
	}
	b.putBufs(cb)   // every key answered from the store: nothing else holds items or slots
	if err != nil { // ctx is done
		return out, err
	}
	return out, errors.Join(errs...)
}

// traceBatch logs one line per batch: how many keys were hits, waited for or computed.
func (b *Batch[A, R]) traceBatch(s *settings, nargs int, slots []slot[R], d time.Duration) {
	var n [howWaited + 1]int
	var absent, failed int
	for _, sl := range slots {
		n[sl.how]++
		switch {
		case sl.err != nil:
			failed++
		case !sl.found:
			absent++
		}
	}
	b.f.trace(s, "cachier: batch", "ns", b.f.ns, "args", nargs, "keys", len(slots),
		"hits", n[howHit], "stale", n[howStale], "waited", n[howWaited], "computed", n[howComputed],
		"not_found", absent, "failed", failed, "took", d)
}

// direct runs the function on the distinct arguments without the store, and adds
// its results to out (which holds what the first levels answered).
func (b *Batch[A, R]) direct(ctx context.Context, s *settings, args []A, out map[A]R, counter interface{ Add(uint64) uint64 }, msg string) (map[A]R, error) {
	uniq := make([]A, 0, len(args))
	seen := make(map[A]struct{}, len(args))
	for _, a := range args {
		if _, ok := seen[a]; !ok {
			seen[a] = struct{}{}
			uniq = append(uniq, a)
		}
	}
	f := b.f
	counter.Add(uint64(len(uniq)))
	if s.verbose {
		f.trace(s, msg, "ns", f.ns, "args", len(uniq))
	}
	f.stats.computations.Add(uint64(len(uniq)))
	start := s.clock.Now()
	m, err := b.fn(ctx, uniq)
	f.stats.observeCompute(s.clock.Now().Sub(start), err)
	if err != nil {
		f.stats.computeErrors.Add(uint64(len(uniq) - 1))
		return out, err
	}
	for _, a := range uniq {
		if v, ok := m[a]; ok {
			out[a] = v
		}
	}
	return out, nil
}

// firstLevels answers into out the arguments that the typed first level or the local
// tier answers, exactly as Func.Call would (hotCall, localCall), and returns the
// others, in order.
func (b *Batch[A, R]) firstLevels(r *resolvedSettings, args []A, out map[A]R) []A {
	f := b.f
	if r.hot {
		return b.hotLevel(r, args, out)
	}
	var rest []A
	for i, a := range args {
		if _, done := out[a]; done {
			continue // repeated
		}
		var (
			v  R
			ok bool
		)
		if r.hot {
			v, ok = f.hotCall(r, a)
		} else {
			v, ok = f.localCall(r, a)
		}
		if ok {
			out[a] = v
			continue
		}
		if rest == nil {
			rest = make([]A, 0, len(args)-i)
		}
		rest = append(rest, a)
	}
	return rest
}

// hotLevel is firstLevels on the typed first level: hotCall's checks that hold for
// every argument are made once, the hits are counted at once, and a repeated
// argument is told by the size of out rather than looked up first.
func (b *Batch[A, R]) hotLevel(r *resolvedSettings, args []A, out map[A]R) []A {
	f := b.f
	if !f.hotOpen(r) {
		return args
	}
	var (
		rest []A
		hits uint64
	)
	for i, a := range args {
		if v, ok := f.hotGet(r, a); ok {
			n := len(out)
			out[a] = v
			if len(out) > n { // not repeated
				hits++
			}
			continue
		}
		if _, done := out[a]; done {
			continue // repeated, answered before
		}
		if rest == nil {
			rest = make([]A, 0, len(args)-i)
		}
		rest = append(rest, a) // a repeated miss is grouped with its first by items
	}
	if hits > 0 {
		if r.s.cleanupEvery > 0 {
			f.maybeCleanup(&r.s)
		}
		f.stats.hits.Add(hits)
	}
	return rest
}

// items derives the keys of args and groups the arguments by key, in cb's memory
// when cb is not nil.
func (b *Batch[A, R]) items(args []A, cb *callBufs[A, R], memo bool) ([]batchItem[A], error) {
	if b.f.groupsByArg() {
		return b.itemsByArg(args, cb, memo)
	}
	var (
		items []batchItem[A]
		byID  map[string]int
	)
	if cb != nil {
		if cap(cb.items) < len(args) {
			cb.items = make([]batchItem[A], 0, len(args))
		}
		if cb.byID == nil {
			cb.byID = make(map[string]int, len(args))
		}
		items, byID = cb.items[:0], cb.byID
		defer clear(byID) // it holds the IDs; the memory stays for the next call
	} else {
		items, byID = make([]batchItem[A], 0, len(args)), make(map[string]int, len(args))
	}
	for _, a := range args {
		k, err := b.f.key(a, memo) // memoized for hot arguments
		if err != nil {
			return nil, err
		}
		if i, ok := byID[k.ID]; ok {
			if it := &items[i]; it.arg != a && !slices.Contains(it.aliases, a) {
				it.aliases = append(it.aliases, a)
			}
			continue
		}
		byID[k.ID] = len(items)
		items = append(items, batchItem[A]{arg: a, k: k})
	}
	return items, nil
}

// itemsByArg is items for a function whose arguments share a key exactly when they
// are equal (groupsByArg): grouped by argument, a map of 8-byte keys instead of one
// of 64-byte IDs, and a repeated argument's key is not derived again. No item has
// aliases.
func (b *Batch[A, R]) itemsByArg(args []A, cb *callBufs[A, R], memo bool) ([]batchItem[A], error) {
	var (
		items []batchItem[A]
		byArg map[A]int
	)
	if cb != nil {
		if cap(cb.items) < len(args) {
			cb.items = make([]batchItem[A], 0, len(args))
		}
		if cb.byArg == nil {
			cb.byArg = make(map[A]int, len(args))
		}
		items, byArg = cb.items[:0], cb.byArg
		defer clear(byArg) // the memory stays for the next call
	} else {
		items, byArg = make([]batchItem[A], 0, len(args)), make(map[A]int, len(args))
	}
	for _, a := range args {
		if _, ok := byArg[a]; ok {
			continue
		}
		k, err := b.f.key(a, memo) // memoized for hot arguments
		if err != nil {
			return nil, err
		}
		byArg[a] = len(items)
		items = append(items, batchItem[A]{arg: a, k: k})
	}
	return items, nil
}

func indexes(n int) []int {
	is := make([]int, n)
	for i := range is {
		is[i] = i
	}
	return is
}

// lookupMany reads and decodes the entries of items[idx] in one batched read, and
// checks the version counters they depend on in one more (only when some entry
// depends on a counter besides the function's own epoch, which only a waiter checks).
// hs[j] answers items[idx[j]] as lookup would, local tier included: storedAt is zero
// for a miss (with corrupt or movedBy saying why a present entry was one). missing[j]
// marks a "not found" record. The error is a store error under FailOnStoreError. Like
// lookup, it fills the typed first level (on a tier.Source) and the local tier with
// the hits it read.
func (b *Batch[A, R]) lookupMany(ctx context.Context, s *settings, items []batchItem[A], idx []int, into *lookupBufs[R], er *epochResult) (hs []found[R], missing []bool, err error) {
	f := b.f
	n := len(idx)
	if into != nil && cap(into.hs) >= n && cap(into.missing) >= n {
		hs, missing = into.hs[:n], into.missing[:n] // zeroed by putBufs
		into.hs, into.missing = hs, missing
	} else {
		hs, missing = make([]found[R], n), make([]bool, n)
	}
	// The local tier first, as lookup does: a copy it may serve costs no store read.
	var (
		read  []int // the positions j read from the store
		lkeys []any
		seq   uint64 // the tier's fill sequence, read before the entries
	)
	if f.localOn(s) {
		lkeys = make([]any, n)
		read = make([]int, 0, n)
		for j, i := range idx {
			lkeys[j] = f.tierKey(items[i].arg, items[i].k)
			if h, ok := f.lookupLocal(s, lkeys[j]); ok {
				hs[j] = h
				continue
			}
			read = append(read, j)
		}
		if len(read) == 0 {
			return hs, missing, nil
		}
		seq = f.local.sync.seq.Load()
	} else {
		read = into.identity(n)
	}
	var ks []store.Key
	if into != nil && cap(into.ks) >= len(read) {
		ks = into.ks[:len(read)] // zeroed by putBufs
		into.ks = ks
	} else {
		ks = make([]store.Key, len(read))
		if into != nil {
			into.ks = ks
		}
	}
	for r, j := range read {
		ks[r] = items[idx[j]].k
	}
	var (
		es      []store.Entry
		errs    []error
		lives   []any
		tickets []*tier.Ticket // with a tier.Source: each entry's life, for the first level
		cepoch  uint64         // and the store's counter epoch, read before the entries
	)
	src, isSrc := store.Unwrap(s.store).(tier.Source)
	ls, isLive := s.store.(store.LiveStore)
	switch {
	case isSrc && f.hot != nil:
		// In process: a loop of map reads beats any batching.
		cepoch = src.CountersEpoch()
		if into != nil {
			// Into the pooled memory, zeroed by putBufs.
			if cap(into.es) < len(ks) {
				into.es, into.errs = make([]store.Entry, len(ks)), make([]error, len(ks))
			}
			if cap(into.lives) < len(ks) {
				into.lives, into.tickets = make([]any, len(ks)), make([]*tier.Ticket, len(ks))
			}
			es, errs, lives, tickets = into.es[:len(ks)], into.errs[:len(ks)], into.lives[:len(ks)], into.tickets[:len(ks)]
			into.es, into.errs, into.lives, into.tickets = es, errs, lives, tickets
		} else {
			es, errs, lives, tickets = make([]store.Entry, len(ks)), make([]error, len(ks)), make([]any, len(ks)), make([]*tier.Ticket, len(ks))
		}
		for r, k := range ks {
			es[r], lives[r], tickets[r], errs[r] = src.GetTicketed(ctx, k)
		}
	case isLive:
		es, errs, lives = make([]store.Entry, len(ks)), make([]error, len(ks)), make([]any, len(ks))
		for r, k := range ks {
			es[r], lives[r], errs[r] = ls.GetLive(ctx, k)
		}
	default:
		opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
		vb, isVB := s.store.(store.VersionedBatcher)
		if _, isV := s.store.(store.Versioner); er != nil && isVB && isV {
			// The function's epoch in the same read (readEpoch's answer).
			var (
				vs   []uint64
				verr error
			)
			es, errs, vs, verr, err = vb.GetManyVersioned(opCtx, ks, []string{f.epochName})
			if err == nil {
				er.read = true
				switch {
				case noCounters(verr):
				case verr != nil:
					er.err = verr
				default:
					er.ep = epoch{v: vs[0], ok: true}
				}
			}
		} else if ib, isIB := s.store.(store.IntoBatcher); isIB && into != nil {
			// Into the pooled memory: at 100 keys, 9 KB a batch not allocated.
			if cap(into.es) < len(ks) {
				into.es, into.errs = make([]store.Entry, len(ks)), make([]error, len(ks))
			}
			es, errs = into.es[:len(ks)], into.errs[:len(ks)] // zeroed by putBufs
			into.es, into.errs = es, errs
			err = ib.GetManyInto(opCtx, ks, es, errs)
		} else {
			es, errs, err = store.GetMany(opCtx, s.store, ks)
		}
		cancel()
		if err != nil {
			f.stats.storeErrors.Add(uint64(len(ks) - 1)) // one per key; storeFailed counts the last
			return hs, missing, f.storeFailed(ctx, s, "get", store.Key{Namespace: f.ns, ID: fmt.Sprintf("(%d keys)", len(ks))}, err)
		}
	}
	var (
		own   = f.epochName    // the function's epoch: only waiters check it
		deps  [][]envelope.Dep // by r: the dependencies a hit must check, if any
		names []string
		ok    = true
		one   [1]envelope.Dep // decodes one entry's dependency (the epoch) at a time
	)
	for r, j := range read {
		switch e := errs[r]; {
		case e == nil:
		case errors.Is(e, store.ErrCorrupt):
			hs[j].corrupt = e
			continue
		case errors.Is(e, store.ErrNotFound):
			continue
		default:
			ok = false
			if err := f.storeFailed(ctx, s, "get", ks[r], e); err != nil {
				return hs, missing, err
			}
			continue
		}
		h := &hs[j]
		var (
			live any
			meta envelope.Meta
			derr error
		)
		if lives != nil {
			live = lives[r]
		}
		if v, isR := live.(R); isR && live != nil {
			h.v = v
			if f.tags.hasMeta() {
				meta, derr = envelope.Peek(es[r].Value)
			}
		} else {
			// Bytes from an in-process store are shared with it; others are ours.
			// meta.Deps may alias one, the next entry's buffer: kept only cloned.
			h.v, meta, derr = f.decodeReuse(s, es[r].Value, lives != nil, one[:0:1], own)
		}
		switch {
		case errors.Is(derr, errMissingRecord):
			missing[j] = true
		case derr != nil:
			h.corrupt = derr
			continue
		}
		for _, d := range meta.Deps {
			if d.Name == own {
				h.epoch, h.hasEpoch = d.Version, true
				continue
			}
			if deps == nil {
				deps = make([][]envelope.Dep, len(read))
			}
			if deps[r] == nil {
				deps[r] = slices.Clone(meta.Deps)
			}
			names = append(names, d.Name)
		}
		h.storedAt, h.ttl, h.expiresAt = es[r].StoredAt, meta.TTL, es[r].ExpiresAt
	}
	if ok {
		f.breaker.succeeded()
	}
	if len(names) > 0 {
		// The counters of every entry, in one read.
		slices.Sort(names)
		names = slices.Compact(names)
		vs, err := versions(ctx, s, names)
		if err != nil {
			for r, j := range read {
				if deps[r] != nil {
					hs[j] = found[R]{}
				}
			}
			return hs, missing, f.storeFailed(ctx, s, "versions", ks[0], err)
		}
		known := make(map[string]uint64, len(names))
		for i, name := range names {
			known[name] = vs[i]
		}
		for r, j := range read {
			if deps[r] == nil || hs[j].storedAt.IsZero() {
				continue
			}
			moved, _ := f.movedDep(ctx, s, deps[r], known) // every name is known: no store call
			if moved != "" {
				hs[j] = found[R]{movedBy: moved}
			}
		}
	}
	// The hits read fill the first levels, as lookup's do.
	if tickets == nil && lkeys == nil {
		return hs, missing, nil
	}
	for r, j := range read {
		h := &hs[j]
		if h.storedAt.IsZero() || missing[j] {
			continue
		}
		hasDeps := deps != nil && deps[r] != nil
		if tickets != nil && tickets[r] != nil {
			f.hot.put(items[idx[j]].arg, &hotEntry[R]{v: h.v, times: h.foundTimes, gen: s.gen,
				life: tickets[r], deps: hasDeps, epoch: cepoch})
		}
		if lkeys != nil {
			f.fillLocal(s, lkeys[j], h, seq, hasDeps, len(es[r].Value))
		}
	}
	return hs, missing, nil
}

// acceptMany reads the entries of items[idx] and answers, in slots, those that may
// answer a call that began computing at notBefore (see accept), marking them as. It
// returns the indexes still unanswered. Under Overwrite a call accepts no stored
// result; a background refresh (as == howStale) accepts one stored after it began.
//
// ep is the invalidation epoch the call read when it began: as accept does, it takes
// no entry computed under another epoch, which began before an Invalidate or Clear
// that the call follows (see invalidation.go).
//
// With er, the call has not read the epoch yet: it is read with the entries where
// the store can (store.VersionedBatcher), then used as ep, and reported in er
// (er.read false: not read).
func (b *Batch[A, R]) acceptMany(ctx context.Context, s *settings, items []batchItem[A], idx []int, notBefore time.Time, ep epoch, er *epochResult, slots []slot[R], as how) ([]int, error) {
	if len(idx) == 0 {
		return nil, nil
	}
	hs, missing, err := b.lookupMany(ctx, s, items, idx, nil, er)
	if err != nil {
		return idx, err
	}
	if er != nil && er.read && er.err == nil {
		ep = er.ep
	} else if er != nil {
		// Not read with the entries: read apart, after them (a later epoch only
		// refuses more).
		er.ep, er.err = b.f.readEpoch(ctx, s)
		er.read = true
		ep = er.ep
	}
	var rest []int
	now := s.clock.Now()
	for j, i := range idx {
		h := &hs[j]
		ok := false
		switch {
		case h.storedAt.IsZero():
		case ep.ok && h.hasEpoch && h.epoch != ep.v:
			// Computed before an invalidation this call follows.
		case s.overwrite && as != howStale:
			// Refresh and Overwrite accept no stored result: theirs must come from a
			// computation that began after they were asked for.
		case h.storedAt.After(notBefore):
			ok = true
		case !s.overwrite:
			limit := s.effectiveLimit(h.ttl)
			ok = !s.expired(&h.foundTimes, now) && (limit == 0 || (limit > 0 && s.age(now, h.storedAt) < limit))
		}
		if !ok {
			rest = append(rest, i)
			continue
		}
		slots[i] = slot[R]{v: h.v, found: !missing[j], how: as}
	}
	return rest, nil
}

// ranOf is what the single flight of a key that a batch computed hands to the
// callers that joined it: its value, ErrNoResult for "not found", or its error.
func ranOf[R any](sl slot[R]) (ran[R], error) {
	switch {
	case sl.err != nil:
		return ran[R]{}, sl.err
	case !sl.found:
		return ran[R]{}, ErrNoResult
	}
	return ran[R]{v: sl.v, ran: sl.how == howComputed}, nil
}

// compute answers items[idx]: it starts this process's single flight of each key
// nobody computes yet, computes those keys together (computeOwned), and joins the
// flights of the others. It returns ctx.Err() if ctx is done first; the
// computations go on for the others.
//
// The flights it starts are begun and ended by the call itself (flight.Begin): no
// goroutine per key. The function runs on the caller's goroutine when ctx cannot end,
// as a single call's does (flight.JoinInline); otherwise on one goroutine of its own,
// so that the caller can leave on ctx while it goes on for the others. The keys
// others compute are waited for after this call's own flights have ended, so that
// two batches waiting for each other's keys never wait for each other.
func (b *Batch[A, R]) compute(ctx context.Context, s *settings, items []batchItem[A], idx []int, slots []slot[R], w0 writeMark) error {
	if len(idx) == 0 {
		return nil
	}
	f := b.f
	// Key order, so that two batches take their flights and leases in the same order.
	slices.SortFunc(idx, func(i, j int) int { return cmp.Compare(items[i].k.ID, items[j].k.ID) })
	var (
		owned, joined []int                                      // item indexes
		calls         = make([]*flight.Call[ran[R]], len(items)) // by item: the flights joined or started
		runs          []flight.Call[ran[R]]                      // the flights this call may start
	)
	if !s.overwrite {
		runs = make([]flight.Call[ran[R]], len(idx))
	}
	for j, i := range idx {
		if s.overwrite {
			// Refresh and Overwrite answer with a computation begun after they were
			// asked for: they join no flight already under way.
			owned = append(owned, i)
			continue
		}
		// Joining or starting is one step: a flight that ends meanwhile cannot make
		// this key's computation start twice.
		c, started := f.inflight.Begin(items[i].k.ID, &runs[j])
		calls[i] = c
		if started {
			owned = append(owned, i)
		} else {
			joined = append(joined, i)
		}
	}
	var waitStart time.Time
	if len(joined) > 0 {
		waitStart = s.clock.Now()
	}
	var (
		ownDone  chan struct{} // closed when the owned keys are answered in own
		own      []slot[R]
		panicked *flight.PanicError
	)
	if len(owned) > 0 {
		inline := ctx.Done() == nil
		run := func(own []slot[R]) {
			var pe *flight.PanicError
			func() {
				defer func() { // whatever happens, the flights must end
					if r := recover(); r != nil {
						pe = &flight.PanicError{Value: r, Stack: debug.Stack()}
					}
				}()
				shared := ctx
				if !inline {
					shared = context.WithoutCancel(ctx)
				}
				if !f.life.begin() { // closed meanwhile: the store is not ours to use any more
					pe = b.runOnly(shared, s, items, owned, own)
					return
				}
				defer f.life.end() // Close waits for this computation to store its results
				pe = b.computeOwned(shared, s, items, owned, own, w0)
			}()
			for _, i := range owned {
				if pe != nil {
					own[i] = slot[R]{err: publicPanic(pe)}
				}
				// Ending the flight unregisters it first: no call that starts after
				// this one returns can join it and get its result for its own.
				if c := calls[i]; c != nil {
					c.End(ranOf(own[i]))
					c.Leave()
				}
			}
			panicked = pe
		}
		if inline {
			run(slots)
		} else {
			own = make([]slot[R], len(items))
			ownDone = make(chan struct{})
			go func() {
				// The batch function runs here: under the labels (runtime/pprof) of the
				// caller's context, as a single computation does on a flight worker (a
				// new goroutine has those of the goroutine that started it).
				pprof.SetGoroutineLabels(ctx)
				defer close(ownDone)
				run(own)
			}()
		}
	}
	for n, i := range joined {
		c := calls[i]
		select {
		case <-c.Done():
		case <-ctx.Done():
			// The waits go on for the flights, which end for the others; this caller
			// leaves them as they end, as it would have stayed.
			rest := joined[n:]
			go func() {
				for _, i := range rest {
					c := calls[i]
					<-c.Done()
					c.Leave()
					f.stats.waits.Add(1)
					f.stats.observeWait(s.clock.Now().Sub(waitStart))
				}
			}()
			return ctx.Err()
		}
		c.Leave()
		r, err := c.Result()
		sl := slot[R]{v: r.v, found: err == nil, how: howWaited}
		f.stats.waits.Add(1)
		f.stats.observeWait(s.clock.Now().Sub(waitStart))
		var pe *flight.PanicError
		switch {
		case err == nil, errors.Is(err, ErrNoResult):
		case errors.As(err, &pe):
			sl.err = publicPanic(pe)
		default:
			sl.err = err
		}
		slots[i] = sl
	}
	if ownDone != nil {
		select {
		case <-ownDone:
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, i := range owned {
			slots[i] = own[i]
		}
	}
	if panicked != nil {
		panic(publicPanic(panicked)) // the caller that ran the function gets its panic
	}
	return nil
}

// computeOwned answers items[idx], whose single flights this process holds, into
// slots. On a store that other processes share, it takes the calculation lease of
// each key in key order without waiting for any, computes the keys it got in one call
// of the function, then waits for the results of the keys others hold, and repeats
// for the keys whose holders gave up. It never waits while it holds a lease, so
// batches that overlap in any order cannot deadlock. It returns the function's panic,
// if it panicked.
func (b *Batch[A, R]) computeOwned(ctx context.Context, s *settings, items []batchItem[A], idx []int, slots []slot[R], w0 writeMark) *flight.PanicError {
	f := b.f
	if processLocal(s.store) {
		// The single flights already make these the only computations of their keys
		// in the process, and an in-process store is seen by no other. A run that
		// ended between the lookup and these flights may have stored a result
		// already (as in a single call's computeShared), unless nothing was stored
		// since the lookup (w0).
		if !s.overwrite && !w0.unchanged(s.store) {
			rest, err := b.acceptMany(ctx, s, items, idx, s.clock.Now(), epoch{}, nil, slots, howWaited)
			if err == nil {
				idx = rest
			}
			if len(idx) == 0 {
				return nil
			}
		}
		return b.runAndStore(ctx, s, items, idx, nil, nil, slots)
	}
	// The invalidation epoch is read with the re-check of the entries under the
	// leases (acceptMany), before anything is computed or accepted: a result computed
	// before a later Invalidate or Clear is never accepted. The generation is read
	// before it, so that the first computation below can record this epoch rather
	// than read it again (epochRead).
	g0 := f.inv.gen.Load()
	var (
		ep     epoch
		epRead bool
		pre    *epochRead
	)
	notBefore := s.clock.Now()
	owner := newOwner()
	var (
		waitStart time.Time
		poll      = minPoll
		remaining = idx
		heldUntil = map[int]time.Time{} // the holders' lease expiries, to count takeovers
	)
	for len(remaining) > 0 {
		var (
			mine, blind, held []int
			leases            = map[int]store.Lease{}
			soonest           time.Time
		)
		now := s.clock.Now()
		got, gotErrs := b.acquireMany(ctx, s, items, remaining, owner)
		for j, i := range remaining {
			l, err := got[j], gotErrs[j]
			var he *store.HeldError
			switch {
			case err == nil:
				mine = append(mine, i)
				leases[i] = l
				if t, ok := heldUntil[i]; l.TakenOver || (!store.ReportsTakeovers(s.store) && ok && !now.Before(t)) {
					f.stats.leaseTakeovers.Add(1)
				}
			case errors.As(err, &he) || errors.Is(err, store.ErrLeaseHeld):
				held = append(held, i)
				if he != nil {
					heldUntil[i] = he.Holder.ExpiresAt
					if soonest.IsZero() || he.Holder.ExpiresAt.Before(soonest) {
						soonest = he.Holder.ExpiresAt
					}
				}
			default:
				if err := f.storeFailed(ctx, s, "acquire", items[i].k, err); err != nil {
					slots[i] = slot[R]{err: err}
					continue
				}
				blind = append(blind, i) // computed without a lease
			}
		}
		// A result may have landed between the lookup and the lease.
		var er *epochResult
		if !epRead {
			er = &epochResult{}
		}
		rest, err := b.acceptMany(ctx, s, items, mine, notBefore, ep, er, slots, howWaited)
		if er != nil {
			epRead = true
			if !er.read { // nothing to re-check
				er.ep, er.err = f.readEpoch(ctx, s)
			}
			if er.err != nil {
				if err := f.storeFailed(ctx, s, "versions", items[idx[0]].k, er.err); err != nil {
					for _, i := range remaining {
						if slots[i].how == howMiss { // not answered by the re-check
							slots[i] = slot[R]{err: err}
						}
					}
					b.releaseMany(ctx, s, slices.Collect(maps.Values(leases)))
					return nil
				}
			} else {
				ep, pre = er.ep, &epochRead{g0: g0, ep: er.ep}
			}
		}
		if err != nil {
			for _, i := range append(mine, blind...) {
				slots[i] = slot[R]{err: err}
			}
			mine, blind, rest = nil, nil, nil
		}
		var done []store.Lease // answered meanwhile (or failed): not computed here
		for i, l := range leases {
			if !slices.Contains(rest, i) {
				done = append(done, l)
				delete(leases, i)
			}
		}
		b.releaseMany(ctx, s, done)
		if pe := b.runAndStore(ctx, s, items, append(rest, blind...), leases, pre, slots); pe != nil {
			return pe
		}
		pre = nil // a later round, after waiting, reads the epoch afresh
		if len(held) == 0 {
			break
		}
		// Others compute these: wait for their results.
		if waitStart.IsZero() {
			waitStart = s.clock.Now()
			f.stats.waits.Add(uint64(len(held)))
			if s.verbose {
				f.trace(s, "cachier: batch waiting for other computations", "ns", f.ns, "keys", len(held))
			}
		}
		if remaining, err = b.acceptMany(ctx, s, items, held, notBefore, ep, nil, slots, howWaited); err != nil {
			for _, i := range remaining {
				slots[i] = slot[R]{err: err}
			}
			break
		}
		if len(remaining) == 0 {
			break
		}
		if s.waitTimeout > 0 && s.clock.Now().Sub(waitStart) >= s.waitTimeout {
			f.stats.waitTimeouts.Add(uint64(len(remaining)))
			return b.runAndStore(ctx, s, items, remaining, nil, nil, slots)
		}
		sleep := poll
		if until := soonest.Sub(s.clock.Now()); !soonest.IsZero() && until > 0 && until < sleep {
			sleep = until // wake when the first holder's lease runs out
		}
		sleepOn(s.clock, sleep)
		poll = min(poll*2, maxPoll)
	}
	if !waitStart.IsZero() {
		d := s.clock.Now().Sub(waitStart)
		for _, i := range idx {
			if slots[i].how == howWaited {
				f.stats.observeWait(d)
			}
		}
	}
	return nil
}

// processLocal reports whether no other process sees st's records, so that the
// single flights of this process are all there is to coordinate.
func processLocal(st store.Store) bool {
	pl, ok := st.(store.ProcessLocal)
	return ok && pl.ProcessLocal()
}

// sleepOn waits d by c's timers.
func sleepOn(c Clock, d time.Duration) {
	<-c.NewTimer(d).C()
}

// afterFunc calls fn after d by c's timers.
func afterFunc(c Clock, d time.Duration, fn func()) {
	c.AfterFunc(d, fn)
}

// epochResult is the function's invalidation epoch as acceptMany read it.
type epochResult struct {
	ep   epoch
	err  error
	read bool
}

// epochRead is the function's invalidation epoch as a computation read it before
// taking its leases, and the generation read before that epoch.
type epochRead struct {
	g0 uint64
	ep epoch
}

// runAndStore computes items[idx] in one call of the function, renewing their
// leases while it runs, stores the results in one batched write, then releases the
// leases, in that order, so that a waiter woken by a release finds the result. With
// pre, when the epoch is the only counter the entries depend on, they record pre's
// rather than one read again (a round trip fewer: reading it earlier can only make
// an entry stale sooner). It returns the function's panic, if it panicked; every
// slot then holds an error.
func (b *Batch[A, R]) runAndStore(ctx context.Context, s *settings, items []batchItem[A], idx []int, leases map[int]store.Lease, pre *epochRead, slots []slot[R]) (pe *flight.PanicError) {
	if len(idx) == 0 {
		return nil
	}
	f := b.f
	var held map[int]*heldLease // by item; the write hands them over (writeAndRelease)
	if len(leases) > 0 {
		held = make(map[int]*heldLease, len(leases))
		for i, l := range leases {
			h := f.life.hold(s.store, l)
			f.keepRenewing(ctx, s, h)
			held[i] = h
		}
		defer func() {
			// Those the write released are skipped (handOver).
			hs := make([]*heldLease, 0, len(held))
			for _, h := range held {
				hs = append(hs, h)
			}
			b.releaseHeld(ctx, s, hs)
		}()
	}
	// The generation before the counters (the epoch E0 among them), as save reads
	// it: the write checks it instead of reading the epoch again (invalidation.go).
	g0 := f.inv.gen.Load()
	// The counters are read before computing, all in one read: an invalidation while
	// the function runs leaves the new entries already stale. They include the
	// function's invalidation epoch, checked again around the write (as Func's save
	// does), except on a store no other process sees, where the generation is all
	// there is to check (missCounters). Without the tags' counters the results are
	// returned but not stored.
	inProc := processLocal(s.store)
	var (
		before [][]envelope.Dep // by j; nil when no key depends on a counter
		perKey [][]string
		names  []string
	)
	beforeOf := func(j int) []envelope.Dep {
		if before == nil {
			return nil
		}
		return before[j]
	}
	storable := true
	for j, i := range idx {
		var ns []string
		if inProc {
			ns = f.missCounters(s, items[i].arg)
		} else {
			ns = f.writeCounters(s, items[i].arg)
		}
		if len(ns) == 0 {
			continue
		}
		if perKey == nil {
			perKey = make([][]string, len(idx))
		}
		perKey[j] = ns
		names = append(names, ns...)
	}
	if len(names) > 0 {
		before = make([][]envelope.Dep, len(idx))
		slices.Sort(names)
		names = slices.Compact(names)
		var (
			ds  []envelope.Dep
			err error
		)
		if pre != nil && pre.ep.ok && len(names) == 1 && names[0] == f.epochName {
			ds = []envelope.Dep{{Name: f.epochName, Version: pre.ep.v}}
		} else {
			ds, err = deps(ctx, s, names)
		}
		if err != nil {
			if err := f.storeFailed(ctx, s, "versions", items[idx[0]].k, err); err != nil {
				for _, i := range idx {
					slots[i] = slot[R]{err: err}
				}
				return nil
			}
			storable = !f.tags.needsVersions()
		} else {
			byName := make(map[string]envelope.Dep, len(ds))
			for _, d := range ds {
				byName[d.Name] = d
			}
			for j := range idx {
				for _, n := range perKey[j] {
					before[j] = append(before[j], byName[n])
				}
			}
		}
	}
	m, pe := b.runFor(ctx, s, items, idx, slots)
	if m == nil {
		return pe
	}
	var (
		err    error
		ks     = make([]store.Key, 0, len(idx))
		es     = make([]store.Entry, 0, len(idx))
		vs     = make([]any, 0, len(idx))
		writes = make([]int, 0, len(idx))
		// On a process-local store of live values, entries whose bytes nobody may read
		// are kept without them (livebytes.go), as Func's save keeps its own: lazies
		// marks them, by write.
		lazies []bool
		lz     store.LazyLiveStore
		enc    *liveEncoder[R]
		now    time.Time
	)
	if inProc {
		lazies = make([]bool, 0, len(idx))
	}
	if !storable {
		for j, i := range idx {
			v, ok := m[items[i].arg]
			slots[i] = slot[R]{v: v, found: ok, how: howComputed}
			_ = j
		}
		return nil
	}
	for j, i := range idx {
		it := &items[i]
		v, ok := m[it.arg]
		slots[i] = slot[R]{v: v, found: ok, how: howComputed}
		var (
			e    store.Entry
			lazy bool
		)
		switch {
		case ok && inProc:
			var (
				to *liveEncoder[R]
				in store.LazyLiveStore
			)
			if in, to, lazy = f.lazyTarget(s, v, beforeOf(j)); lazy {
				lz, enc = in, to // the same for every key of the call
				if now.IsZero() {
					now = s.clock.Now()
				}
				e = store.Entry{StoredAt: now, ExpiresAt: s.expiresAt(now, 0)}
				break
			}
			fallthrough
		case ok:
			var sealed bool
			e, sealed, err = f.seal(ctx, s, it.k, it.arg, v, beforeOf(j))
			if err != nil && s.failClosed {
				slots[i].err = err
			}
			if !sealed {
				continue
			}
		case b.bs.missingTTL > 0:
			e = store.Entry{
				Value:    envelope.Seal(envelope.Raw, envelope.Meta{Flags: envelope.Missing, TTL: b.bs.missingTTL, Deps: beforeOf(j)}, nil),
				StoredAt: s.clock.Now(),
			}
			e.ExpiresAt = s.expiresAt(e.StoredAt, b.bs.missingTTL)
		default:
			continue // computed again next time
		}
		ks, es, vs, writes = append(ks, it.k), append(es, e), append(vs, any(nil)), append(writes, i)
		if inProc {
			lazies = append(lazies, lazy)
		}
		if ok {
			vs[len(vs)-1] = any(v)
		}
	}
	if len(writes) == 0 {
		return nil
	}
	// The epoch is the function's, the same for every key: one check before the
	// write, as one step with Invalidate and Clear in this process (the generation on
	// a shared store, the epoch itself in memory), and one after it for those of
	// other processes, which deletes what was written if it moved.
	e0, checked := f.recordedEpoch(beforeOf(slices.Index(idx, writes[0])))
	local := f.localOn(s)
	var seq uint64 // the local tier's fill sequence, read before the write
	wctx := ctx    // the writes': tagged as the local tier's own (ownWrites)
	if local {
		seq = f.local.sync.seq.Load()
		wctx = f.local.sync.ownWrites(ctx)
	}
	wr, combined := s.store.(store.WriteReleaseBatcher)
	if _, live := s.store.(store.LiveStore); live || processLocal(s.store) {
		combined = false // written in memory, where an epoch read costs no round trip
	}
	var (
		errs  []error
		werr  error
		moved bool // the epoch after the write is not the one the entries recorded
		// markDone: the marker was sent with the writes; changedNS is not needed.
		markDone bool
	)
	if (checked || combined) && !inProc {
		f.invMu.RLock()
	}
	switch {
	case inProc:
		// As Func's save on such a store: the generation, read before the counters,
		// is checked under the lock before the write, and again after it for an
		// invalidation through another Func of the namespace (its own lock), which
		// deletes what was written.
		f.invMu.RLock()
		if f.inv.gen.Load() != g0 {
			f.invMu.RUnlock()
			f.invalidatedMeanwhile(s, ks[0])
			f.stats.invalidated.Add(uint64(len(ks) - 1)) // per key
			return nil
		}
		errs, werr = b.write(wctx, s, ks, es, vs, lazies, lz, enc)
		f.invMu.RUnlock()
		if werr == nil && f.inv.gen.Load() != g0 {
			f.invalidatedMeanwhile(s, ks[0])
			moved = true
		}
	case combined:
		// As Func's save: the generation, read before the counters, answers the check
		// before the write (invalidation.go says why no epoch read is needed there),
		// and the write, the release of the leases and the epoch after the write are
		// one round trip.
		if f.inv.gen.Load() != g0 {
			f.invMu.RUnlock()
			f.invalidatedMeanwhile(s, ks[0])
			f.stats.invalidated.Add(uint64(len(ks) - 1)) // per key
			return nil
		}
		// With a local tier, the namespace's marker is written in the same call, after
		// the entries (store.WriteReleaseBatcher orders it after them): no round trip
		// of its own. Where it can, by compare-and-swap from the value this process's
		// tier last saw, so that the tier keeps its copies when nobody else moved it
		// (see Coherence in localtier.go).
		markDone = local && markersOn(s.store)
		errs, moved, werr = b.writeAndRelease(wctx, s, wr, ks, es, writes, held, checked, e0, markDone)
		f.invMu.RUnlock()
		if markDone && werr == nil {
			if merr := errs[len(ks)]; merr != nil {
				_ = f.storeFailed(ctx, s, "mark", nsMarker(f.ns), merr)
			}
			errs = errs[:len(ks)]
		}
	default:
		if checked && !f.epochStill(ctx, s, ks[0], e0) {
			f.invMu.RUnlock()
			f.stats.invalidated.Add(uint64(len(ks) - 1)) // per key; epochStill counted one
			return nil
		}
		errs, werr = b.write(wctx, s, ks, es, vs, nil, nil, nil)
		if checked {
			f.invMu.RUnlock()
			// On a store.ProcessLocal store the read is in memory; it catches another
			// Func of the namespace, which invalidates under its own lock.
			moved = werr == nil && !f.epochStill(ctx, s, ks[0], e0)
		}
	}
	if moved || (combined && checked && werr != nil) {
		// Another process invalidated since the epoch was read before computing; or
		// the outcome of the write is unknown, and so is its epoch.
		if moved {
			f.stats.invalidated.Add(uint64(len(ks) - 1)) // per key; one counted already
		}
		for j, k := range ks {
			opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
			if derr := s.store.Delete(opCtx, k); derr != nil && moved {
				_ = f.storeFailed(ctx, s, "delete", k, derr)
			}
			cancel()
			if local {
				f.local.forget(f.tierKey(items[writes[j]].arg, k))
			}
		}
		if werr == nil {
			return nil
		}
	}
	if werr != nil {
		if local {
			for j, k := range ks {
				f.local.forget(f.tierKey(items[writes[j]].arg, k))
			}
		}
		f.stats.storeErrors.Add(uint64(len(ks) - 1)) // one per key
		if err := f.storeFailed(ctx, s, "set", store.Key{Namespace: f.ns, ID: fmt.Sprintf("(%d keys)", len(ks))}, werr); err != nil {
			for _, i := range writes {
				slots[i].err = err
			}
		}
		return nil
	}
	marked := false
	for j, i := range writes {
		if local {
			// As Func's save: the value written becomes the local copy. A "not found"
			// record is not kept locally (a copy is a value); it is read from the store.
			v, _ := vs[j].(R)
			werr := errs[j]
			if werr == nil && !slots[i].found {
				werr = errMissingRecord
			}
			f.keepLocal(s, ks[j], items[i].arg, v, es[j], seq, werr)
			marked = marked || errs[j] == nil
		}
		if err := f.stored(ctx, s, ks[j], es[j], errs[j]); err != nil {
			slots[i].err = err
		}
	}
	if local && f.inv.gen.Load() != g0 {
		// An Invalidate or Clear in this process since the counters were read may have
		// dropped the local copies before they were filled above: drop them again.
		for j, k := range ks {
			f.local.forget(f.tierKey(items[writes[j]].arg, k))
		}
	}
	switch {
	case markDone:
		// The marker moved with the writes; this process's other tiers of the
		// namespace drop their copies as changedNS would have them do.
		droppedNS(s, f.ns, f.local.sync)
	case marked:
		// One marker move for the whole batch tells the other processes' local tiers.
		if err := changedNS(ctx, s, f.ns, f.local.sync); err != nil {
			_ = f.storeFailed(ctx, s, "mark", ks[0], err)
		}
	}
	return nil
}

// writeAndRelease stores es under ks, the results of items[writes], releases the
// leases held for them (handed over from held first, so that no renewal races the
// release) and, when checked, reads the function's epoch after the writes, all in
// one call (store.WriteReleaseBatcher: one round trip on a store that can). moved
// reports an epoch other than e0. A lease the call may not have released is
// released again, as Func's save does.
func (b *Batch[A, R]) writeAndRelease(ctx context.Context, s *settings, wr store.WriteReleaseBatcher, ks []store.Key, es []store.Entry, writes []int, held map[int]*heldLease, checked bool, e0 uint64, mark bool) (errs []error, moved bool, err error) {
	f := b.f
	ls := make([]store.Lease, len(ks))
	for j, i := range writes {
		if h := held[i]; h != nil {
			ls[j], _ = f.handOver(h) // zero when Close released it meanwhile
		}
	}
	var names []string
	if checked {
		names = []string{f.epochName}
	}
	var marks []store.Key
	var markEs []store.Entry
	var (
		own   bool // the marker moves by compare-and-swap from from (tierSync.beginOwnMove)
		from  []byte
		wrs   store.WriteReleaseSwapBatcher
		moves []bool
	)
	if mark {
		marks = []store.Key{nsMarker(f.ns)}
		wrs, own = wr.(store.WriteReleaseSwapBatcher)
		if own {
			var e store.Entry
			from, e, own = f.local.sync.beginOwnMove(s.store)
			markEs = []store.Entry{e}
		}
		if !own {
			markEs = []store.Entry{markerEntry()}
		}
	}
	opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	var relErrs []error
	var vs []uint64
	if own {
		errs, relErrs, vs, moves, err = wrs.WriteAndReleaseManySwap(opCtx, ks, es, ls, marks, [][]byte{from}, markEs, names)
	} else {
		errs, relErrs, vs, err = wr.WriteAndReleaseMany(opCtx, ks, es, ls, marks, markEs, names)
	}
	cancel()
	if own && err == nil && errs[len(ks)] == nil && !f.local.sync.endOwnMove(from, markEs[0], moves[0]) {
		// Another process moved the marker since this process's tier read it: a
		// plain move, after the writes, and the tier drops its copies at its next
		// reconcile.
		errs[len(ks)] = moveMarker(ctx, s.store, s.storeTimeout, marks[0])
	}
	switch {
	case err != nil && relErrs == nil:
		var again []store.Lease
		for _, l := range ls {
			if l.Owner.Token != "" {
				again = append(again, l)
			}
		}
		b.releaseMany(ctx, s, again)
	default:
		for j, rerr := range relErrs {
			if rerr != nil {
				_ = f.storeFailed(ctx, s, "release", ls[j].Key, rerr)
			}
		}
	}
	if err == nil && checked && (len(vs) != 1 || vs[0] != e0) {
		f.invalidatedMeanwhile(s, ks[0])
		moved = true
	}
	return errs, moved, err
}

// acquireMany takes the calculation leases of items[idx] for o, in the order of idx
// (key order), in one round trip where the store can (store.AcquireMany). got[j] and
// errs[j] answer items[idx[j]] as Func's acquire would.
func (b *Batch[A, R]) acquireMany(ctx context.Context, s *settings, items []batchItem[A], idx []int, o store.Owner) (got []store.Lease, errs []error) {
	ks := make([]store.Key, len(idx))
	for j, i := range idx {
		ks[j] = items[i].k
	}
	opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	defer cancel()
	got, errs, err := store.AcquireMany(opCtx, s.store, ks, o, s.leaseTTL)
	if err != nil {
		errs = make([]error, len(idx))
		for j := range errs {
			errs[j] = err
		}
		got = make([]store.Lease, len(idx))
	}
	return got, errs
}

// releaseMany gives up ls in one round trip where the store can (store.ReleaseMany).
// Releases, unlike acquisitions, need no order: nobody waits while holding one.
func (b *Batch[A, R]) releaseMany(ctx context.Context, s *settings, ls []store.Lease) {
	if len(ls) == 0 {
		return
	}
	f := b.f
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.storeTimeout)
	defer cancel()
	errs, err := store.ReleaseMany(opCtx, s.store, ls)
	if err != nil {
		_ = f.storeFailed(ctx, s, "release", ls[0].Key, err)
		return
	}
	for j, err := range errs {
		if err != nil {
			_ = f.storeFailed(ctx, s, "release", ls[j].Key, err)
		}
	}
}

// releaseHeld stops renewing the leases held while computing and releases those that
// nobody (Close) released meanwhile, all at once.
func (b *Batch[A, R]) releaseHeld(ctx context.Context, s *settings, held []*heldLease) {
	ls := make([]store.Lease, 0, len(held))
	for _, h := range held {
		if l, ok := b.f.handOver(h); ok {
			ls = append(ls, l)
		}
	}
	b.releaseMany(ctx, s, ls)
}

// runFor calls the function for items[idx], counting the computations. When it fails
// or panics, it puts the error in their slots and returns a nil map (and the panic).
func (b *Batch[A, R]) runFor(ctx context.Context, s *settings, items []batchItem[A], idx []int, slots []slot[R]) (map[A]R, *flight.PanicError) {
	f := b.f
	args := make([]A, len(idx))
	for j, i := range idx {
		args[j] = items[i].arg
	}
	n := uint64(len(idx))
	f.stats.computations.Add(n)
	start := s.clock.Now()
	var pe *flight.PanicError
	m, err := b.run(ctx, args, &pe)
	f.stats.observeCompute(s.clock.Now().Sub(start), err)
	if pe != nil || err != nil {
		f.stats.computeErrors.Add(n - 1) // per key; observeCompute counted one
		if pe != nil {
			err = publicPanic(pe)
		}
		if s.verbose {
			f.trace(s, "cachier: batch function failed; nothing stored", "ns", f.ns, "keys", len(idx), "err", err)
		}
		for _, i := range idx {
			slots[i] = slot[R]{err: err, how: howComputed}
		}
		return nil, pe
	}
	if m == nil {
		m = map[A]R{}
	}
	return m, nil
}

// runOnly computes items[idx] without the store: the Batch was closed meanwhile.
func (b *Batch[A, R]) runOnly(ctx context.Context, s *settings, items []batchItem[A], idx []int, slots []slot[R]) *flight.PanicError {
	m, pe := b.runFor(ctx, s, items, idx, slots)
	if m == nil {
		return pe
	}
	for _, i := range idx {
		v, ok := m[items[i].arg]
		slots[i] = slot[R]{v: v, found: ok, how: howComputed}
	}
	return nil
}

// write stores es under ks in one batched write (SetLive on an in-process store,
// SetLazy to lz, with enc, for the entries lazies marks).
func (b *Batch[A, R]) write(ctx context.Context, s *settings, ks []store.Key, es []store.Entry, vs []any, lazies []bool, lz store.LazyLiveStore, enc *liveEncoder[R]) ([]error, error) {
	if ls, ok := s.store.(store.LiveStore); ok {
		errs := make([]error, len(ks))
		for j := range ks {
			if lazies != nil && lazies[j] {
				errs[j] = lz.SetLazy(ctx, ks[j], es[j], vs[j], sizeOfFlat[R](vs[j], enc.flatR), enc)
				continue
			}
			errs[j] = ls.SetLive(ctx, ks[j], es[j], vs[j])
		}
		return errs, nil
	}
	opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	defer cancel()
	return store.SetMany(opCtx, s.store, ks, es)
}

// run calls the batch function, catching a panic into *pe.
func (b *Batch[A, R]) run(ctx context.Context, args []A, pe **flight.PanicError) (m map[A]R, err error) {
	defer func() {
		if r := recover(); r != nil {
			*pe = &flight.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return b.fn(ctx, args)
}

// coalescer gathers keys to refresh in the background into batches.
type coalescer[A comparable] struct {
	mu      sync.Mutex
	pending []batchItem[A]
	queued  map[string]bool // keys pending or being refreshed by this process
	armed   bool            // a window is open
}

// refreshLater schedules the background refresh of items[idx], served stale.
func (b *Batch[A, R]) refreshLater(ctx context.Context, s *settings, items []batchItem[A], idx []int) {
	c := &b.refresh
	ctx = context.WithoutCancel(ctx)
	c.mu.Lock()
	if c.queued == nil {
		c.queued = map[string]bool{}
	}
	var now []batchItem[A]
	for _, i := range idx {
		if c.queued[items[i].k.ID] {
			continue // already on its way
		}
		c.queued[items[i].k.ID] = true
		if b.bs.window <= 0 {
			now = append(now, items[i])
			continue
		}
		c.pending = append(c.pending, items[i])
		if b.bs.maxBatch > 0 && len(c.pending) >= b.bs.maxBatch {
			go b.refreshBatch(ctx, s, c.pending)
			c.pending = nil
		}
	}
	if len(c.pending) > 0 && !c.armed {
		c.armed = true
		afterFunc(s.clock, b.bs.window, func() {
			c.mu.Lock()
			batch := c.pending
			c.pending, c.armed = nil, false
			c.mu.Unlock()
			if len(batch) > 0 {
				b.refreshBatch(ctx, s, batch)
			}
		})
	}
	c.mu.Unlock()
	if len(now) > 0 {
		go b.refreshBatch(ctx, s, now)
	}
}

// refreshBatch recomputes items in one call of the function, skipping the keys whose
// lease another caller holds (it is refreshing or computing them) and those refreshed
// meanwhile. Failures are logged and counted; the stale results stay.
func (b *Batch[A, R]) refreshBatch(ctx context.Context, s *settings, items []batchItem[A]) {
	f := b.f
	c := &b.refresh
	defer func() {
		c.mu.Lock()
		for _, it := range items {
			delete(c.queued, it.k.ID)
		}
		c.mu.Unlock()
	}()
	if !f.life.begin() {
		return // closed: no new background work
	}
	defer f.life.end()
	slices.SortFunc(items, func(x, y batchItem[A]) int { return cmp.Compare(x.k.ID, y.k.ID) })
	start := s.clock.Now()
	slots := make([]slot[R], len(items))
	var (
		mine   []int
		leases = map[int]store.Lease{}
	)
	inProcess := processLocal(s.store)
	owner := newOwner()
	var got []store.Lease
	var gotErrs []error
	if !inProcess {
		got, gotErrs = b.acquireMany(ctx, s, items, indexes(len(items)), owner)
	}
	for i, it := range items {
		if inProcess {
			mine = append(mine, i)
			continue
		}
		l, err := got[i], gotErrs[i]
		switch {
		case errors.Is(err, store.ErrLeaseHeld):
			if s.verbose {
				f.trace(s, "cachier: refresh already under way elsewhere", "key", it.k.String())
			}
			continue
		case err != nil:
			_ = f.storeFailed(ctx, s, "acquire", it.k, err)
			continue
		}
		mine, leases[i] = append(mine, i), l
	}
	// A refresh that cannot read the store gives up: nobody waits for its result.
	strict := *s
	strict.failClosed = true
	ep, err := f.readEpoch(ctx, &strict)
	var rest []int
	if err == nil {
		rest, err = b.acceptMany(ctx, &strict, items, mine, start, ep, nil, slots, howStale) // a newer entry stops a refresh
	} else {
		_ = f.storeFailed(ctx, s, "versions", items[0].k, err)
	}
	var done []store.Lease
	for _, i := range mine {
		if l, ok := leases[i]; ok && (err != nil || !slices.Contains(rest, i)) {
			done = append(done, l)
			delete(leases, i)
		}
	}
	b.releaseMany(ctx, s, done)
	if err != nil || len(rest) == 0 {
		return
	}
	pe := b.runAndStore(ctx, s, items, rest, leases, nil, slots)
	var failed int
	var firstErr error
	now := s.clock.Now()
	for _, i := range rest {
		f.backoff.done(items[i].k.ID, now, slots[i].err, s) // a failed key backs off
		if slots[i].err != nil {
			failed++
			firstErr = cmp.Or(firstErr, slots[i].err)
		}
	}
	if failed > 0 {
		// Logged before it is counted, so whoever sees the count finds the log.
		if pe != nil {
			f.logger(s).Error("cachier: background batch refresh panicked; the stale results stay", "ns", f.ns, "keys", failed, "panic", pe.Value)
		} else {
			f.logger(s).Warn("cachier: background batch refresh failed; the stale results stay", "ns", f.ns, "keys", failed, "err", firstErr)
		}
		f.stats.refreshErrors.Add(uint64(failed))
	}
	f.stats.refreshes.Add(uint64(len(rest) - failed))
}
