// Package memstore is the in-process cachier store: entries, leases and wake-ups live
// in this process's memory and vanish with it.
//
// Application code should use package cachier; use memstore directly to give a wrapped
// function a cache that is shared by goroutines but not by processes, to keep tests
// free of servers, or as the fast first level in front of a remote store.
//
// # Design
//
// The hit path is what matters: cachier calls [Store.GetLive] on every hit and keeps
// the decoded result beside the bytes (see [store.LiveStore]), so a hit costs one map
// lookup. The goal is a hit within 2x of a hand-written mutex-and-map memo. So:
//
//   - Entries are spread over 64 shards by a seeded 64-bit hash (hash/maphash) of the
//     key, each shard a map under its own sync.RWMutex. A hit takes the read lock only,
//     so hits on different keys rarely touch the same lock and never wait for each
//     other. The shard's map is keyed by that same hash (entries whose hashes collide
//     are chained and told apart by their full key), so a hit hashes the key's strings
//     once instead of twice: that alone is about a third of a hit's cost.
//   - Entries are immutable once stored; Set replaces the pointer. A reader can use
//     what it found after dropping the lock, and a hit allocates nothing.
//   - Eviction, when [Options] sets a bound, is CLOCK (second chance) rather than LRU.
//     LRU must move an entry to the front of a list on every hit, which needs the write
//     lock and serialises readers. CLOCK only sets an atomic "referenced" bit on a hit
//     (and only when it is not already set, so a hot entry's cache line is not written
//     over and over). When a Set would exceed a bound, a hand sweeps the entries in
//     order, clearing set bits and evicting the first entry whose bit was clear: an entry
//     that was hit since the hand last passed survives, one that was not is evicted.
//     CLOCK approximates LRU closely for memoization workloads, and the cost moves from
//     every hit to the (much rarer, already slow) Set after a computation.
//   - Why not otter v2's W-TinyLFU (issue 13): replayed on one Zipf trace (100,000 keys,
//     a million requests, bench/zipf_test.go), CLOCK hits 34.1% against otter's 42.5% at
//     100 entries, 55.5% against 61.0% at 1,000, and 76.8% against 77.6% at 10,000 (s =
//     1.01); at s = 1.2, 63.9/67.3, 81.4/82.9 and 92.2/91.9. The gap is real only for
//     caches far smaller than the working set. otter enforces its bound eventually (its
//     eviction runs from buffers), bounds entries or weight but not both, and has no
//     per-namespace Clear; this store guarantees both bounds at every instant. So the
//     store keeps CLOCK; the speed of a hit comes from cachier's typed first level in
//     front of it (tickets, below), not from the engine.
//   - Each item carries a ticket (internal/tier) that the store kills when the item
//     stops being the stored entry: replaced, deleted, cleared, evicted, or the store
//     closed. cachier's typed first level keeps the ticket beside its decoded copy and
//     serves the copy only while the ticket lives, so the first level is dropped exactly
//     when the entry is.
//   - Bounded Sets are serialised by one mutex, so the bounds are never exceeded, not
//     even for a moment; unbounded stores skip it. Stores are bounded by default
//     ([DefaultMaxBytes]); [Store.Limits] says what bounds are in force.
//
// The store is a [store.Driver] and declares what else it does: it is
// [store.ProcessLocal] (cachier takes no calculation lease on it; the leases that
// tools ask for are kept by the portable layer in this process), a [store.LiveStore],
// a [store.Lister] and a [store.Versioner] (its counters live apart from the entries,
// so that eviction never drops one). Wake-ups come from the portable layer, through
// which every change of a process-local store passes. Keys and contexts are checked
// there too, once, before a call reaches this package.
//
// # Ownership of values
//
// The store keeps the slice given to Set (the caller must not modify it afterwards),
// and Get returns a copy the caller owns. GetLive, the hot path, returns the stored
// slice itself without copying: treat its Value, like the live value, as read-only.
//
// # URLs
//
// The package registers the scheme "mem" with [store.Open]: "mem://" opens a store
// bounded to [DefaultMaxBytes], "mem://?max_entries=1000&max_bytes=64MiB" one with
// those bounds, and "mem://?max_bytes=0" an unbounded one. Each Open returns a new,
// independent store.
package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/internal/tier"
	"github.com/cachier-go/cachier/store"
)

// numShards is a power of two: enough that 2-64 cores rarely hit the same read lock,
// few enough that Clear and listing (which visit every shard) stay cheap.
const numShards = 64

// errClosed is returned by every method after Close.
var errClosed = errors.New("memstore: store is closed")

// DefaultMaxBytes bounds the total size of the values of a store whose Options leave
// MaxBytes zero (New(nil), "mem://"): past it, the least recently used entries are
// evicted (CLOCK). Set MaxBytes to NoBound for a store that only grows.
const DefaultMaxBytes = 256 << 20

// NoBound, as Options.MaxBytes, turns the byte bound off.
const NoBound = -1

// Options configures a Store. A nil *Options, or the zero value, is a store bounded
// to DefaultMaxBytes of values. [Store.Limits] reports the bounds in force, and
// [Store.Len] and [Store.Bytes] how full the store is.
type Options struct {
	// MaxEntries bounds the number of entries; zero or less means no bound.
	MaxEntries int
	// MaxBytes bounds the total size of the entries' values: zero means
	// DefaultMaxBytes, negative (NoBound) means no bound. A single value larger than
	// MaxBytes is refused with store.ErrTooLarge.
	MaxBytes int64
}

// Store is an in-process store. It is safe for concurrent use. The zero value is not
// usable; call New.
type Store struct {
	seed       maphash.Seed
	maxEntries int64
	maxBytes   int64
	bounded    bool
	// hashMask is all ones; tests narrow it to force hash collisions.
	hashMask uint64
	closed   atomic.Bool

	entries atomic.Int64  // number of entries
	bytes   atomic.Int64  // total len(Value) of the entries
	writes  atomic.Uint64 // entries stored so far (tier.Source.Writes)

	// evictMu serialises bounded Sets and the CLOCK hand. Lock order: evictMu, then
	// one shard's mu at a time.
	evictMu sync.Mutex
	hand    int // the shard the CLOCK hand is in; guarded by evictMu

	shards [numShards]shard

	versions versions // version counters (store.Versioner)
}

// shard is one lock's worth of the store.
type shard struct {
	mu    sync.RWMutex
	items map[uint64]*item // by keyHash; colliding keys chained through item.next
	ring  []*item          // CLOCK order of the items
	hand  int              // next position in ring the CLOCK hand examines
	_     [64]byte         // keep neighbouring shards' locks off one cache line
}

// item is one stored entry. Everything but ref, made and idx is immutable once
// stored.
type item struct {
	key  store.Key
	hash uint64
	e    store.Entry
	live any
	size int64 // len(e.Value), or the estimate SetLazy was given
	// enc makes e.Value of an item stored by SetLazy, on its first read as bytes;
	// made keeps what it made.
	enc  store.Encoder
	made atomic.Pointer[[]byte]
	ref  atomic.Bool // hit since the CLOCK hand last passed
	// life is killed when the item stops being the stored entry of its key
	// (replaced, deleted, cleared, evicted, or the store closed), which drops the
	// copies cachier's typed first level made of it.
	life tier.Ticket
	// Guarded by the shard's lock (read to follow, write to change):
	next *item // next item whose key has the same hash
	idx  int   // position in the shard's ring
}

// New returns an empty store. opts may be nil.
func New(opts *Options) *Store {
	s := &Store{seed: maphash.MakeSeed(), hashMask: ^uint64(0), maxBytes: DefaultMaxBytes}
	if opts != nil {
		s.maxEntries = int64(max(opts.MaxEntries, 0))
		switch {
		case opts.MaxBytes < 0:
			s.maxBytes = 0
		case opts.MaxBytes > 0:
			s.maxBytes = opts.MaxBytes
		}
	}
	s.bounded = s.maxEntries > 0 || s.maxBytes > 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.items = make(map[uint64]*item)
	}
	return s
}

// keyHash returns the seeded hash of k, which picks its shard and its slot there.
func (s *Store) keyHash(k store.Key) uint64 {
	h := maphash.String(s.seed, k.ID)
	h ^= maphash.String(s.seed, k.Namespace) + 0x9e3779b97f4a7c15 + h<<6 + h>>2
	return h & s.hashMask
}

func (s *Store) shardOf(h uint64) *shard { return &s.shards[h&(numShards-1)] }

// lookup returns the item of k, whose hash is h, or nil. The caller holds sh.mu.
func (sh *shard) lookup(h uint64, k store.Key) *item {
	_, it := sh.lookupHead(h, k)
	return it
}

// lookupHead is lookup that also returns the head of h's chain, for link.
func (sh *shard) lookupHead(h uint64, k store.Key) (head, it *item) {
	head = sh.items[h]
	for it := head; it != nil; it = it.next {
		if it.key == k {
			return head, it
		}
	}
	return head, nil
}

// link puts it into the hash chain whose head is head in place of old (nil for a new
// key). The caller holds sh.mu for writing since it read head (lookupHead): a Set
// reads the map once to find and to link.
func (sh *shard) link(it, old, head *item) {
	if old == nil {
		it.next = head
		sh.items[it.hash] = it
		return
	}
	it.next = old.next
	if head == old {
		sh.items[it.hash] = it
		return
	}
	for p := head; p != nil; p = p.next {
		if p.next == old {
			p.next = it
			return
		}
	}
}

// unlink takes it out of its hash chain. The caller holds sh.mu for writing.
func (sh *shard) unlink(it *item) {
	head := sh.items[it.hash]
	if head == it {
		if it.next == nil {
			delete(sh.items, it.hash)
		} else {
			sh.items[it.hash] = it.next
		}
		return
	}
	for p := head; p != nil; p = p.next {
		if p.next == it {
			p.next = it.next
			return
		}
	}
}

// all yields every item of the shard. The caller holds sh.mu and must not change
// the shard while iterating.
func (sh *shard) all(yield func(*item) bool) {
	for _, head := range sh.items {
		for it := head; it != nil; it = it.next {
			if !yield(it) {
				return
			}
		}
	}
}

var _ store.ProcessLocal = (*Store)(nil)

// ProcessLocal implements store.ProcessLocal: no other process sees this store.
func (s *Store) ProcessLocal() bool { return true }

// check is the preamble of every method. Contexts are checked by the portable layer.
func (s *Store) check(context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return nil
}

// errLiveMiss is the miss of GetLive and GetTicketed, the reads of cachier's hot
// path: it names no key (the caller knows it), so that a miss allocates nothing. Get
// names the key.
var errLiveMiss = fmt.Errorf("memstore: no entry: %w", store.ErrNotFound)

// Len returns the number of entries.
func (s *Store) Len() int { return int(s.entries.Load()) }

// Bytes returns the total size of the entries' values.
func (s *Store) Bytes() int64 { return s.bytes.Load() }

// Limits returns the bounds in force: the most entries and the most bytes of values
// the store keeps before it evicts, each 0 when unbounded. A store made with New(nil)
// or "mem://" keeps up to DefaultMaxBytes and any number of entries.
func (s *Store) Limits() (maxEntries int, maxBytes int64) { return int(s.maxEntries), s.maxBytes }

// Get returns a copy of the entry for k, or an error matching store.ErrNotFound. The
// bytes of an entry stored by SetLazy are made now, once.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	it, err := s.find(ctx, k)
	if err != nil {
		return store.Entry{}, err
	}
	if it == nil {
		return store.Entry{}, store.NotFound(k)
	}
	e := it.e
	b, err := it.bytes()
	if err != nil {
		return store.Entry{}, fmt.Errorf("memstore: encoding the live value of %q: %w: %w", k.String(), err, store.ErrCorrupt)
	}
	e.Value = bytes.Clone(b)
	return e, nil
}

// bytes returns the item's bytes, made by its Encoder if it was stored by SetLazy and
// they were not made yet.
func (it *item) bytes() ([]byte, error) {
	if it.enc == nil {
		return it.e.Value, nil
	}
	if b := it.made.Load(); b != nil {
		return *b, nil
	}
	b, err := it.enc.Encode(it.live)
	if err != nil {
		return nil, err
	}
	it.made.CompareAndSwap(nil, &b) // a racing read made equal bytes: keep the first
	return *it.made.Load(), nil
}

// find returns the item of k, marked as recently used, or nil when k has none: the
// one lookup of Get, GetLive and GetTicketed.
func (s *Store) find(ctx context.Context, k store.Key) (*item, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	h := s.keyHash(k)
	sh := s.shardOf(h)
	sh.mu.RLock()
	it := sh.lookup(h, k)
	sh.mu.RUnlock()
	if it != nil && !it.ref.Load() { // read first: a hot entry's cache line stays shared
		it.ref.Store(true)
	}
	return it, nil
}

// GetLive returns the entry for k and the live value attached by SetLive (nil after a
// plain Set). It allocates nothing, on a hit or a miss (whose error names no key).
// The returned Value is the stored slice, shared with every other reader: do not
// modify it.
func (s *Store) GetLive(ctx context.Context, k store.Key) (store.Entry, any, error) {
	it, err := s.find(ctx, k)
	if err != nil {
		return store.Entry{}, nil, err
	}
	if it == nil {
		return store.Entry{}, nil, errLiveMiss
	}
	return it.e, it.live, nil // a SetLazy entry's Value stays empty: no encoding here
}

// Set stores e under k, dropping any live value. The store keeps e.Value: do not
// modify it afterwards.
func (s *Store) Set(ctx context.Context, k store.Key, e store.Entry) error {
	return s.set(ctx, k, e, nil, int64(len(e.Value)), nil)
}

// SetLive is Set that also attaches v, which GetLive returns until the entry is
// replaced or removed. v is shared by every reader.
func (s *Store) SetLive(ctx context.Context, k store.Key, e store.Entry, v any) error {
	return s.set(ctx, k, e, v, int64(len(e.Value)), nil)
}

var _ store.LazyLiveStore = (*Store)(nil)

// SetLazy implements store.LazyLiveStore: it keeps v without its bytes, which enc
// makes the first time Get reads the entry. Until then the entry counts as size
// bytes against MaxBytes and in Bytes and Entries (an estimate the caller gives:
// cachier's is the value's size in memory), and stays so counted after.
func (s *Store) SetLazy(ctx context.Context, k store.Key, e store.Entry, v any, size int64, enc store.Encoder) error {
	e.Value = nil
	return s.set(ctx, k, e, v, max(size, 0), enc)
}

func (s *Store) set(ctx context.Context, k store.Key, e store.Entry, live any, size int64, enc store.Encoder) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if s.bounded {
		if s.maxBytes > 0 && size > s.maxBytes {
			return fmt.Errorf("memstore: value of %d bytes for %q is larger than max_bytes %d: %w",
				size, k.String(), s.maxBytes, store.ErrTooLarge)
		}
		s.evictMu.Lock()
		defer s.evictMu.Unlock()
	}
	h := s.keyHash(k)
	if s.bounded {
		s.makeRoom(k, h, size)
	}
	it := &item{key: k, hash: h, e: e, live: live, size: size, enc: enc}
	sh := s.shardOf(h)
	sh.mu.Lock()
	head, old := sh.lookupHead(h, k)
	if old != nil {
		it.idx = old.idx
		sh.ring[old.idx] = it
		it.ref.Store(old.ref.Load()) // an overwrite keeps the key's recency
		s.bytes.Add(size - old.size)
	} else {
		it.idx = len(sh.ring)
		sh.ring = append(sh.ring, it)
		s.entries.Add(1)
		s.bytes.Add(size)
	}
	sh.link(it, old, head)
	s.writes.Add(1) // after the link: a reader that missed the entry sees the count move
	if old != nil {
		old.life.Kill()
	}
	sh.mu.Unlock()
	return nil
}

// makeRoom evicts until an entry of size bytes can be stored under k (of hash h) within the
// bounds. The caller holds evictMu, so no other Set can add meanwhile; concurrent
// Deletes only make more room.
func (s *Store) makeRoom(k store.Key, h uint64, size int64) {
	// Room even if k is new, the usual case: no need to look k up (an entry it
	// replaces would only leave more).
	if (s.maxEntries <= 0 || s.entries.Load()+1 <= s.maxEntries) && (s.maxBytes <= 0 || s.bytes.Load()+size <= s.maxBytes) {
		return
	}
	sh := s.shardOf(h)
	for {
		var oldSize, exists int64
		sh.mu.RLock()
		if old := sh.lookup(h, k); old != nil {
			oldSize, exists = old.size, 1
		}
		sh.mu.RUnlock()
		entriesOK := s.maxEntries <= 0 || s.entries.Load()-exists+1 <= s.maxEntries
		bytesOK := s.maxBytes <= 0 || s.bytes.Load()-oldSize+size <= s.maxBytes
		if entriesOK && bytesOK {
			return
		}
		if !s.evictOne() {
			return // empty: nothing more to evict (cannot happen with size <= maxBytes)
		}
	}
}

// evictOne moves the CLOCK hand until it evicts one entry, and reports whether it
// did (false only if the store is empty). The caller holds evictMu.
func (s *Store) evictOne() bool {
	if s.entries.Load() == 0 {
		return false
	}
	// Two full turns clear every referenced bit, so the third finds a victim; past
	// that, hits racing with the hand could keep it turning, so take the next entry.
	for visited := 0; visited <= 4*numShards; visited++ {
		force := visited >= 3*numShards
		sh := &s.shards[s.hand]
		sh.mu.Lock()
		for sh.hand < len(sh.ring) {
			it := sh.ring[sh.hand]
			if it.ref.Load() && !force {
				it.ref.Store(false)
				sh.hand++
				continue
			}
			sh.removeItem(s, it) // the last item moves into sh.hand: examine it next time
			sh.mu.Unlock()
			return true
		}
		sh.hand = 0
		sh.mu.Unlock()
		s.hand = (s.hand + 1) % numShards
	}
	return false
}

// removeItem deletes it from the shard and the counters. The caller holds sh.mu.
func (sh *shard) removeItem(s *Store, it *item) {
	last := len(sh.ring) - 1
	moved := sh.ring[last]
	sh.ring[it.idx] = moved
	moved.idx = it.idx
	sh.ring[last] = nil
	sh.ring = sh.ring[:last]
	sh.unlink(it)
	it.life.Kill()
	s.entries.Add(-1)
	s.bytes.Add(-it.size)
}

// Delete removes the entry for k, if any.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	h := s.keyHash(k)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if it := sh.lookup(h, k); it != nil {
		sh.removeItem(s, it)
	}
	return nil
}

// Clear removes every entry of the namespace.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	s.removeIf(namespace, func(*item) bool { return true })
	return nil
}

// DeleteBefore removes the entries of the namespace stored before t.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	return s.removeIf(namespace, func(it *item) bool { return it.e.StoredAt.Before(t) }), nil
}

// removeIf removes the entries of namespace for which drop reports true, and returns
// how many it removed.
func (s *Store) removeIf(namespace string, drop func(*item) bool) int {
	n := 0
	var victims []*item
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		victims = victims[:0]
		for it := range sh.all {
			if it.key.Namespace == namespace && drop(it) {
				victims = append(victims, it)
			}
		}
		for _, it := range victims {
			sh.removeItem(s, it)
		}
		n += len(victims)
		if sh.hand > len(sh.ring) {
			sh.hand = 0
		}
		sh.mu.Unlock()
	}
	return n
}

var _ store.Lister = (*Store)(nil)

// Entries lists the entries of the namespace, shard by shard.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		if err := s.check(ctx); err != nil {
			yield(store.Info{}, err)
			return
		}
		var batch []store.Info
		for i := range s.shards {
			if err := ctx.Err(); err != nil {
				yield(store.Info{}, err)
				return
			}
			sh := &s.shards[i]
			batch = batch[:0]
			sh.mu.RLock()
			for it := range sh.all {
				if it.key.Namespace == namespace {
					batch = append(batch, store.Info{Key: it.key, Size: it.size, StoredAt: it.e.StoredAt, ExpiresAt: it.e.ExpiresAt})
				}
			}
			sh.mu.RUnlock()
			// Yield outside the lock: the loop body may call back into the store.
			for _, info := range batch {
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// Namespaces lists the namespaces that have entries.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	seen := map[string]struct{}{}
	var out []string
	add := func(ns string) {
		if _, ok := seen[ns]; !ok {
			seen[ns] = struct{}{}
			out = append(out, ns)
		}
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for it := range sh.all {
			add(it.key.Namespace)
		}
		sh.mu.RUnlock()
	}
	return out, nil
}

// Close drops every entry. Every later call returns an error.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for it := range sh.all {
			it.life.Kill()
		}
		clear(sh.items)
		sh.ring, sh.hand = nil, 0
		sh.mu.Unlock()
	}
	s.entries.Store(0)
	s.bytes.Store(0)
	return nil
}

var _ store.ExpiryCleaner = (*Store)(nil)

// DeleteExpired implements store.ExpiryCleaner: it removes the entries of the
// namespace whose ExpiresAt is at or before now, in one pass over the shards.
func (s *Store) DeleteExpired(ctx context.Context, namespace string, now time.Time) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	return s.removeIf(namespace, func(it *item) bool { return it.e.Expired(now) }), nil
}
