package memcachestore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier/store"
)

// ErrCorrupt reports a record that cannot be decoded: short, garbled, of a foreign
// format, or written for another key. It is store.ErrCorrupt; Get wraps it together
// with store.ErrNotFound, so callers treat such a record as a miss.
var ErrCorrupt = store.ErrCorrupt

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "cachier"

// DefaultMaxItemSize is memcached's default item size limit (memcached -I 1m).
const DefaultMaxItemSize = 1 << 20

// MaxPrefixLen is the longest Options.Prefix accepted, so that every item key stays
// within memcached's 250 bytes.
const MaxPrefixLen = 150

// itemOverhead is what memcached adds to key and value when sizing an item (header,
// CAS, suffix, CRLF), rounded up generously.
const itemOverhead = 96

// maxRelativeExpiration is the longest relative expiration memcached accepts; longer
// values are read as absolute Unix times.
const maxRelativeExpiration = 30 * 24 * 60 * 60

// casRetries bounds the loop that reads or creates a generation counter.
const casRetries = 16

// Options configure a Store. The zero value (or nil) uses the defaults.
type Options struct {
	// Prefix starts every item key, so that several applications can share a
	// memcached. Printable ASCII without spaces, at most MaxPrefixLen bytes.
	// Default DefaultPrefix.
	Prefix string
	// MaxItemSize is the server's item size limit (memcached -I). Values that would not
	// fit are refused with store.ErrTooLarge before they are sent. Default
	// DefaultMaxItemSize.
	MaxItemSize int
	// Clock returns the current time, by which an entry's ExpiresAt becomes memcached's
	// relative expiration. Default time.Now. Lease expiry is the portable layer's
	// (store.WithClock).
	Clock func() time.Time
	// GenerationTTL lets Get trust a namespace's generation counter, as this Store
	// last read it, for this long. Zero (the default) reads the counter on every Get,
	// together with the entry in one round trip, so a Clear by any process is seen at
	// once. A positive value makes a hit one plain Get (a miss needs no counter at all),
	// at the price that a Clear by another process may go unseen for up to
	// GenerationTTL; this Store's own Clear is seen at once.
	GenerationTTL time.Duration
	// Addr is the address of the client's server, when it has exactly one (as given
	// to memcache.New). With it, the Store keeps connections of its own to that
	// server (with the client's DialContext, Timeout, and MaxIdleConns but at least
	// 8 idle) and sends each Get, GetAndCreate and SetAndDelete as one pipelined
	// batch of meta commands (memcached 1.6 or later): a Get, the lease taken with the
	// reads of a miss, and the write with the lease's release are one round trip
	// each. Without it every operation goes through the client, one round trip per
	// command (as on a server older than 1.6, which the Store detects). The URL
	// opener sets it when the URL names one server.
	Addr string
}

// Store is a store.Driver on memcached, with the Swapper, Clearer, Batcher, Expirer,
// ReadOrAcquirer and WriteAndReleaser capabilities. It is safe for concurrent use;
// use it through store.Adapt (cachier does so itself).
type Store struct {
	c           *memcache.Client
	prefix      string
	maxItemSize int
	now         func() time.Time
	owned       bool // the client was made by the URL opener: Close closes it

	meta   *metaPool   // with Options.Addr: the Store's own connections
	noMeta atomic.Bool // the server answered a meta command with ERROR: use the client

	genTTL time.Duration
	genMu  sync.Mutex
	gens   map[string]cachedGen // by generation item key; only when genTTL > 0
	clears uint64               // Clear calls so far, under genMu: a Get that overlaps one caches nothing

	// The write path (misspath.go).
	wmu   sync.Mutex
	wgens map[string]uint64    // each generation counter as last read, by its item key
	cass  map[string]casRecord // lease records this Store read right after creating them, by item key
}

type cachedGen struct {
	gen   uint64
	until time.Time
}

// The capabilities Store declares.
var _ interface {
	store.Driver
	store.Swapper
	store.Clearer
	store.Batcher
	store.Expirer
	store.ReadOrAcquirer
	store.WriteAndReleaser
	store.Pinger
} = (*Store)(nil)

// New returns a store on client, which stays the caller's: Close does not close it.
func New(client *memcache.Client, opts *Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("memcachestore: nil client")
	}
	o := store.OptionsOf(opts)
	o.Prefix = cmp.Or(o.Prefix, DefaultPrefix)
	if err := validatePrefix(o.Prefix); err != nil {
		return nil, err
	}
	o.MaxItemSize = cmp.Or(o.MaxItemSize, DefaultMaxItemSize)
	if o.MaxItemSize < 4096 {
		return nil, fmt.Errorf("memcachestore: MaxItemSize %d is below 4096", o.MaxItemSize)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.GenerationTTL < 0 {
		return nil, fmt.Errorf("memcachestore: negative GenerationTTL %s", o.GenerationTTL)
	}
	s := &Store{
		c: client, prefix: o.Prefix, maxItemSize: o.MaxItemSize, now: o.Clock,
		genTTL: o.GenerationTTL, gens: map[string]cachedGen{},
		wgens: map[string]uint64{}, cass: map[string]casRecord{},
	}
	if o.Addr != "" {
		s.meta = newMetaPool(o.Addr, client)
	}
	return s, nil
}

func validatePrefix(p string) error {
	if err := store.CheckPrefix(p, MaxPrefixLen, ""); err != nil {
		return fmt.Errorf("memcachestore: %w", err)
	}
	return nil
}

// MaxValueSize returns the largest value Set accepts for k under this store's
// MaxItemSize.
func (s *Store) MaxValueSize(k store.Key) int {
	key := s.itemKey(k)
	return s.maxItemSize - itemOverhead - len(key) - entrySize(k.Namespace, k.ID, nil)
}

// itemKey is the key of k's item: its entry, or a record of the portable layer.
func (s *Store) itemKey(k store.Key) string {
	var buf [256]byte // most keys hash without an allocation
	b := append(append(append(buf[:0], k.Namespace...), 0), k.ID...)
	sum := sha256.Sum256(b)
	return s.hashedKey('e', sum[:])
}

// genKey is the key of the generation counter of namespace ns.
func (s *Store) genKey(ns string) string {
	var buf [256]byte
	sum := sha256.Sum256(append(buf[:0], ns...))
	return s.hashedKey('g', sum[:])
}

// hashedKey returns <prefix>:<kind>:<base64url(sum)> with one allocation.
func (s *Store) hashedKey(kind byte, sum []byte) string {
	var enc [64]byte
	n := base64.RawURLEncoding.EncodedLen(len(sum))
	base64.RawURLEncoding.Encode(enc[:n], sum)
	var b strings.Builder
	b.Grow(len(s.prefix) + 3 + n)
	b.WriteString(s.prefix)
	b.WriteByte(':')
	b.WriteByte(kind)
	b.WriteByte(':')
	b.Write(enc[:n])
	return b.String()
}

func corrupt(k store.Key, why error) error {
	return fmt.Errorf("%w: %w: %s: %w", store.ErrNotFound, ErrCorrupt, k, why)
}

// parseGen decodes a generation counter. memcached may pad a decremented number with
// spaces; incr never shortens, but be lenient.
func parseGen(v []byte) (uint64, bool) {
	n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
	return n, err == nil
}

// randomGen is a new counter's value: random, odd, and below 2^63, so that incr has
// room before it wraps.
func randomGen() uint64 { return store.NewVersion()>>1 | 1 }

// generation returns the counter under key, creating it with a random value if it is
// missing.
func (s *Store) generation(ctx context.Context, key string) (uint64, error) {
	for range casRetries {
		get := []op{{verb: 'g', key: key}}
		if err := s.run(ctx, get); err != nil { // run checks ctx: the client takes none
			return 0, err
		}
		if get[0].found {
			g, ok := parseGen(get[0].value)
			if !ok {
				return 0, fmt.Errorf("%w: generation counter %s holds %q", ErrCorrupt, key, truncate(get[0].value))
			}
			return g, nil
		}
		g := randomGen()
		add := []op{{verb: 'a', key: key, val: strconv.AppendUint(nil, g, 10)}}
		if err := s.run(ctx, add); err != nil {
			return 0, err
		}
		if add[0].ok {
			return g, nil
		}
		// Someone else created it first: read theirs.
	}
	return 0, fmt.Errorf("memcachestore: generation counter %s keeps vanishing", key)
}

// bump increments the counter under key. A missing counter needs no bump: no record
// can hold the random value it will be created with. A garbled one is replaced.
func (s *Store) bump(key string) error {
	_, err := s.c.Increment(key, 1)
	switch {
	case err == nil, errors.Is(err, memcache.ErrCacheMiss):
		return nil
	case strings.Contains(err.Error(), "non-numeric"):
		return s.c.Set(&memcache.Item{Key: key, Value: strconv.AppendUint(nil, randomGen(), 10)})
	}
	return err
}

func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// Get returns the entry of k with one round trip: the namespace's generation counter
// and the entry are fetched together.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	gk, ek := s.genKey(k.Namespace), s.itemKey(k)
	if s.genTTL > 0 {
		if gen, ok := s.cachedGen(gk); ok {
			it, err := s.c.Get(ek)
			switch {
			case errors.Is(err, memcache.ErrCacheMiss):
				return store.Entry{}, store.NotFound(k)
			case err != nil:
				return store.Entry{}, err
			}
			e, rgen, err := decodeFor(k, it.Value)
			if err != nil || rgen == gen {
				return e, err
			}
			// Written under another generation: maybe ours is stale. Look again.
		}
	}
	clears := s.clearCount()
	ops := [2]op{{verb: 'g', key: gk}, {verb: 'g', key: ek}}
	if err := s.run(ctx, ops[:]); err != nil {
		return store.Entry{}, err
	}
	s.sawGen(gk, ops[0].value)
	return s.entryFrom(k, gk, ops[0].value, ops[1].value, clears)
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// entryFrom returns k's entry from the values read (nil: no item) of its namespace's
// generation counter gk and of the entry (clears is clearCount from before the read),
// and caches the counter.
func (s *Store) entryFrom(k store.Key, gk string, gv, ev []byte, clears uint64) (store.Entry, error) {
	if gv == nil {
		return store.Entry{}, store.NotFound(k) // no counter: nothing written since it was created or evicted
	}
	gen, ok := parseGen(gv)
	if !ok {
		return store.Entry{}, corrupt(k, fmt.Errorf("generation counter holds %q", truncate(gv)))
	}
	s.cacheGen(gk, gen, clears)
	if ev == nil {
		return store.Entry{}, store.NotFound(k)
	}
	e, rgen, err := decodeFor(k, ev)
	if err == nil && rgen != gen {
		return store.Entry{}, store.NotFound(k) // written before the last Clear
	}
	return e, err
}

// decodeFor decodes an entry record that must belong to k, and returns the generation
// it was written under.
func decodeFor(k store.Key, b []byte) (store.Entry, uint64, error) {
	r, err := decodeEntry(b)
	switch {
	case err != nil:
		return store.Entry{}, 0, corrupt(k, err)
	case r.ns != k.Namespace || r.id != k.ID:
		return store.Entry{}, 0, corrupt(k, fmt.Errorf("record belongs to %s/%s", r.ns, r.id))
	}
	// The item's buffer is ours alone; the caller may keep the value without a copy.
	return store.Entry{Value: r.value, StoredAt: r.storedAt, ExpiresAt: r.expiresAt}, r.gen, nil
}

func (s *Store) cachedGen(key string) (uint64, bool) {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	c, ok := s.gens[key]
	if !ok || time.Now().After(c.until) {
		return 0, false
	}
	return c.gen, true
}

func (s *Store) clearCount() uint64 {
	if s.genTTL <= 0 {
		return 0
	}
	s.genMu.Lock()
	defer s.genMu.Unlock()
	return s.clears
}

// cacheGen remembers gen, read when s.clears was clears, unless a Clear began since.
func (s *Store) cacheGen(key string, gen, clears uint64) {
	if s.genTTL <= 0 {
		return
	}
	s.genMu.Lock()
	defer s.genMu.Unlock()
	if s.clears == clears {
		s.gens[key] = cachedGen{gen: gen, until: time.Now().Add(s.genTTL)}
	}
}

// forgetGen drops the cached counter and keeps Gets in flight from caching theirs.
func (s *Store) forgetGen(key string) {
	if s.genTTL <= 0 {
		return
	}
	s.genMu.Lock()
	defer s.genMu.Unlock()
	s.clears++
	delete(s.gens, key)
}

// Set stores e under k in the namespace's current generation.
func (s *Store) Set(ctx context.Context, k store.Key, e store.Entry) error {
	ek := s.itemKey(k)
	if err := s.tooLarge(k, ek, e.Value); err != nil {
		return err
	}
	gen, err := s.generation(ctx, s.genKey(k.Namespace))
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rec := appendEntryExp(make([]byte, 0, entrySize(k.Namespace, k.ID, e.Value)+8), gen, e.StoredAt, e.ExpiresAt, k.Namespace, k.ID, e.Value)
	if err := s.c.Set(&memcache.Item{Key: ek, Value: rec, Expiration: entryExpiration(e.ExpiresAt, s.now())}); err != nil {
		if isTooLarge(err) {
			return fmt.Errorf("%w: %s: %w", store.ErrTooLarge, k, err)
		}
		return err
	}
	return nil
}

func isTooLarge(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "object too large") || strings.Contains(msg, "out of memory storing object")
}

// Delete removes the entry of k.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	ek := s.itemKey(k)
	s.forgetCAS(ek)
	if err := s.c.Delete(ek); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		return err
	}
	return nil
}

// Clear makes every entry of the namespace a miss by bumping its generation counter,
// in O(1). memcached reclaims the old entries as it needs the memory.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	gk := s.genKey(namespace)
	s.forgetGen(gk)
	err := s.bump(gk)
	s.forgetGen(gk) // a concurrent Get may have cached the old value meanwhile
	return err
}

// Swap implements store.Swapper with memcached's own atomic operations: add creates an
// absent item, gets and cas replace the item only if nobody changed it since it was
// read, and a cas to an item that expires at once deletes it. An item written under an
// older generation of the namespace (before a Clear) counts as absent, and is replaced
// with cas like any other. A lost race reports false; the portable layer reads again.
func (s *Store) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	ek := s.itemKey(k)
	s.forgetCAS(ek)
	if next != nil {
		if err := s.tooLarge(k, ek, next.Value); err != nil {
			return false, err
		}
	}
	gen, err := s.generation(ctx, s.genKey(k.Namespace))
	if err != nil {
		return false, err
	}
	cur, err := s.c.Get(ek)
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		cur = nil
	case err != nil:
		return false, err
	}
	present := false
	if cur != nil {
		e, rgen, derr := decodeFor(k, cur.Value)
		if derr == nil && rgen == gen {
			present = true
			if old == nil || !bytes.Equal(e.Value, old) {
				return false, nil
			}
		}
	}
	if present != (old != nil) {
		return false, nil
	}
	item := &memcache.Item{Key: ek, Expiration: -1} // a delete: expired at once
	if next != nil {
		item.Value = appendEntryExp(nil, gen, next.StoredAt, next.ExpiresAt, k.Namespace, k.ID, next.Value)
		item.Expiration = entryExpiration(next.ExpiresAt, s.now())
	}
	switch {
	case cur == nil && next == nil:
		return true, nil // nothing there, nothing to delete
	case cur == nil:
		err = s.c.Add(item)
	default:
		item.CasID = cur.CasID
		if item.Value == nil {
			item.Value = []byte{}
		}
		err = s.c.CompareAndSwap(item)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCASConflict):
		return false, nil // changed since we read it
	case isTooLarge(err):
		return false, fmt.Errorf("%w: %s: %w", store.ErrTooLarge, k, err)
	}
	return false, err
}

// Close closes the client if the store was opened from a URL; a client passed to New
// stays open.
func (s *Store) Close() error {
	if s.meta != nil {
		s.meta.close()
	}
	if s.owned {
		return s.c.Close()
	}
	return nil
}
