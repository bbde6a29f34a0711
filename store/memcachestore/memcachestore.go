package memcachestore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"sync"
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

// casRetries bounds the read-compare-swap loops of the lease methods under contention.
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
	// Clock returns the current time, for lease expiry. Default time.Now. Hosts that
	// share a store are assumed to agree on the time to well within a lease's TTL.
	Clock func() time.Time
	// GenerationTTL lets Get trust a namespace's generation counter, as this Store
	// last read it, for this long. Zero (the default) reads the counter on every Get,
	// together with the entry in one GetMulti, so a Clear by any process is seen at
	// once. A positive value makes a hit one plain Get (a miss needs no counter at all),
	// at the price that a Clear by another process may go unseen for up to
	// GenerationTTL; this Store's own Clear is seen at once.
	GenerationTTL time.Duration
}

// Store is a store.Store on memcached. It is safe for concurrent use.
type Store struct {
	c           *memcache.Client
	prefix      string
	maxItemSize int
	now         func() time.Time
	owned       bool // the client was made by the URL opener: Close closes it

	genTTL time.Duration
	genMu  sync.Mutex
	gens   map[string]cachedGen // by generation item key; only when genTTL > 0
	clears uint64               // Clear calls so far, under genMu: a Get that overlaps one caches nothing
}

type cachedGen struct {
	gen   uint64
	until time.Time
}

var _ store.Store = (*Store)(nil)

// New returns a store on client, which stays the caller's: Close does not close it.
func New(client *memcache.Client, opts *Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("memcachestore: nil client")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := validatePrefix(o.Prefix); err != nil {
		return nil, err
	}
	if o.MaxItemSize == 0 {
		o.MaxItemSize = DefaultMaxItemSize
	}
	if o.MaxItemSize < 4096 {
		return nil, fmt.Errorf("memcachestore: MaxItemSize %d is below 4096", o.MaxItemSize)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.GenerationTTL < 0 {
		return nil, fmt.Errorf("memcachestore: negative GenerationTTL %s", o.GenerationTTL)
	}
	return &Store{
		c: client, prefix: o.Prefix, maxItemSize: o.MaxItemSize, now: o.Clock,
		genTTL: o.GenerationTTL, gens: map[string]cachedGen{},
	}, nil
}

func validatePrefix(p string) error {
	if len(p) > MaxPrefixLen {
		return fmt.Errorf("memcachestore: prefix of %d bytes is longer than %d", len(p), MaxPrefixLen)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("memcachestore: prefix %q holds a space, control or non-ASCII byte", p)
		}
	}
	return nil
}

// MaxValueSize returns the largest value Set accepts for k under this store's
// MaxItemSize.
func (s *Store) MaxValueSize(k store.Key) int {
	key := s.itemKey('e', k)
	return s.maxItemSize - itemOverhead - len(key) - entrySize(k.Namespace, k.ID, nil)
}

// Item keys. kind: 'e' entry, 'l' lease, 'g' entry generation, 'h' lease generation.
func (s *Store) itemKey(kind byte, k store.Key) string {
	h := sha256.New()
	h.Write([]byte(k.Namespace))
	h.Write([]byte{0})
	h.Write([]byte(k.ID))
	return s.hashedKey(kind, h.Sum(nil))
}

func (s *Store) genKey(kind byte, ns string) string {
	sum := sha256.Sum256([]byte(ns))
	return s.hashedKey(kind, sum[:])
}

func (s *Store) hashedKey(kind byte, sum []byte) string {
	var b strings.Builder
	b.Grow(len(s.prefix) + 3 + base64.RawURLEncoding.EncodedLen(len(sum)))
	b.WriteString(s.prefix)
	b.WriteByte(':')
	b.WriteByte(kind)
	b.WriteByte(':')
	b.WriteString(base64.RawURLEncoding.EncodeToString(sum))
	return b.String()
}

func notFound(k store.Key) error { return fmt.Errorf("%w: %s", store.ErrNotFound, k) }

func corrupt(k store.Key, why error) error {
	return fmt.Errorf("%w: %w: %s: %w", store.ErrNotFound, ErrCorrupt, k, why)
}

// parseGen decodes a generation counter. memcached may pad a decremented number with
// spaces; incr never shortens, but be lenient.
func parseGen(v []byte) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(string(v)), 10, 64)
	return n, err == nil
}

func randomGen() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails
	return binary.BigEndian.Uint64(b[:])>>1 | 1
}

// generation returns the counter under key, creating it with a random value if it is
// missing.
func (s *Store) generation(ctx context.Context, key string) (uint64, error) {
	for range casRetries {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		it, err := s.c.Get(key)
		switch {
		case err == nil:
			g, ok := parseGen(it.Value)
			if !ok {
				return 0, fmt.Errorf("%w: generation counter %s holds %q", ErrCorrupt, key, truncate(it.Value))
			}
			return g, nil
		case !errors.Is(err, memcache.ErrCacheMiss):
			return 0, err
		}
		g := randomGen()
		err = s.c.Add(&memcache.Item{Key: key, Value: strconv.AppendUint(nil, g, 10)})
		switch {
		case err == nil:
			return g, nil
		case !errors.Is(err, memcache.ErrNotStored):
			return 0, err
		}
		// Someone else created it first: read theirs.
	}
	return 0, fmt.Errorf("memcachestore: generation counter %s keeps vanishing", key)
}

// bump increments the counter under key. A missing counter needs no bump: no record
// can hold the random value it will be created with. A garbled one is replaced.
func (s *Store) bump(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
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
	if err := ctx.Err(); err != nil {
		return store.Entry{}, err
	}
	if err := k.Validate(); err != nil {
		return store.Entry{}, err
	}
	gk, ek := s.genKey('g', k.Namespace), s.itemKey('e', k)
	if s.genTTL > 0 {
		if gen, ok := s.cachedGen(gk); ok {
			it, err := s.c.Get(ek)
			switch {
			case errors.Is(err, memcache.ErrCacheMiss):
				return store.Entry{}, notFound(k)
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
	items, err := s.c.GetMulti([]string{gk, ek})
	if err != nil {
		return store.Entry{}, err
	}
	return s.entryOf(k, gk, ek, items, clears)
}

// entryOf returns k's entry from the items of a GetMulti that fetched the namespace's
// generation counter gk and the entry ek (clears is clearCount from before it), and
// caches the counter.
func (s *Store) entryOf(k store.Key, gk, ek string, items map[string]*memcache.Item, clears uint64) (store.Entry, error) {
	git, eit := items[gk], items[ek]
	if git == nil {
		return store.Entry{}, notFound(k) // no counter: nothing written since it was created or evicted
	}
	gen, ok := parseGen(git.Value)
	if !ok {
		return store.Entry{}, corrupt(k, fmt.Errorf("generation counter holds %q", truncate(git.Value)))
	}
	s.cacheGen(gk, gen, clears)
	if eit == nil {
		return store.Entry{}, notFound(k)
	}
	e, rgen, err := decodeFor(k, eit.Value)
	if err == nil && rgen != gen {
		return store.Entry{}, notFound(k) // written before the last Clear
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
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.Validate(); err != nil {
		return err
	}
	ek := s.itemKey('e', k)
	if n := len(ek) + entrySize(k.Namespace, k.ID, e.Value) + itemOverhead; n > s.maxItemSize {
		return fmt.Errorf("%w: %s: value of %d bytes does not fit memcached's item limit of %d bytes (at most %d)",
			store.ErrTooLarge, k, len(e.Value), s.maxItemSize, s.MaxValueSize(k))
	}
	gen, err := s.generation(ctx, s.genKey('g', k.Namespace))
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
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.Validate(); err != nil {
		return err
	}
	if err := s.c.Delete(s.itemKey('e', k)); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		return err
	}
	return nil
}

// Clear makes every entry of the namespace a miss by bumping its generation counter,
// in O(1). memcached reclaims the old entries as it needs the memory.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	if err := store.ValidateNamespace(namespace); err != nil {
		return err
	}
	gk := s.genKey('g', namespace)
	s.forgetGen(gk)
	err := s.bump(ctx, gk)
	s.forgetGen(gk) // a concurrent Get may have cached the old value meanwhile
	return err
}

func unsupported(what string) error {
	return fmt.Errorf("memcachestore: %s: memcached cannot enumerate its keys: %w", what, errors.ErrUnsupported)
}

// DeleteBefore returns an error matching errors.ErrUnsupported: memcached cannot find
// a namespace's entries. Use Clear, or let memcached evict them.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return 0, unsupported("DeleteBefore")
}

// Entries yields one error matching errors.ErrUnsupported: memcached cannot list keys.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(store.Info{}, err)
			return
		}
		yield(store.Info{}, unsupported("Entries"))
	}
}

// Namespaces returns an error matching errors.ErrUnsupported: memcached cannot list keys.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, unsupported("Namespaces")
}

// Leases yields one error matching errors.ErrUnsupported: memcached cannot list keys.
func (s *Store) Leases(ctx context.Context, namespace string) iter.Seq2[store.Lease, error] {
	return func(yield func(store.Lease, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(store.Lease{}, err)
			return
		}
		yield(store.Lease{}, unsupported("Leases"))
	}
}

// expiration returns memcached's expiration for a lease of ttl: whole seconds, rounded
// up, plus one so that the item outlives the record's precise expiry, at most 30 days.
func expiration(ttl time.Duration) int32 {
	secs := int64(math.Ceil(ttl.Seconds())) + 1
	return int32(min(max(secs, 1), maxRelativeExpiration))
}

func validateLease(k store.Key, o store.Owner, ttl time.Duration) error {
	if err := k.Validate(); err != nil {
		return err
	}
	switch {
	case ttl <= 0:
		return fmt.Errorf("memcachestore: lease ttl %s is not positive", ttl)
	case o.Token == "":
		return errors.New("memcachestore: lease owner has an empty token")
	case len(o.Token) > math.MaxUint16 || len(o.Host) > math.MaxUint16:
		return errors.New("memcachestore: lease owner host or token longer than 65535 bytes")
	}
	return nil
}

// live reports whether r is an unexpired lease on k granted under generation gen.
func (s *Store) live(r leaseRecord, k store.Key, gen uint64, now time.Time) bool {
	return r.token != "" && r.gen == gen && r.ns == k.Namespace && r.id == k.ID && now.Before(r.expiresAt)
}

// Acquire takes the lease on k with memcached add, or takes over an expired, released
// or older-generation lease with compare-and-swap.
func (s *Store) Acquire(ctx context.Context, k store.Key, o store.Owner, ttl time.Duration) (store.Lease, error) {
	if err := ctx.Err(); err != nil {
		return store.Lease{}, err
	}
	if err := validateLease(k, o, ttl); err != nil {
		return store.Lease{}, err
	}
	lk, gk := s.itemKey('l', k), s.genKey('h', k.Namespace)
	for range casRetries {
		if err := ctx.Err(); err != nil {
			return store.Lease{}, err
		}
		items, err := s.c.GetMulti([]string{gk, lk})
		if err != nil {
			return store.Lease{}, err
		}
		var gen uint64
		if git := items[gk]; git != nil {
			g, ok := parseGen(git.Value)
			if !ok {
				return store.Lease{}, fmt.Errorf("%w: lease generation counter %s holds %q", ErrCorrupt, gk, truncate(git.Value))
			}
			gen = g
		} else if gen, err = s.generation(ctx, gk); err != nil {
			return store.Lease{}, err
		}
		now := s.now()
		l := store.Lease{Key: k, Owner: o, ExpiresAt: now.Add(ttl)}
		item := &memcache.Item{
			Key:        lk,
			Value:      appendLease(nil, leaseRecord{gen: gen, expiresAt: l.ExpiresAt, pid: int64(o.PID), ns: k.Namespace, id: k.ID, host: o.Host, token: o.Token}),
			Expiration: expiration(ttl),
		}
		cur := items[lk]
		if cur == nil {
			err = s.c.Add(item)
		} else {
			r, derr := decodeLease(cur.Value)
			if derr == nil && s.live(r, k, gen, now) {
				return store.Lease{}, &store.HeldError{Holder: store.Lease{
					Key:       k,
					Owner:     store.Owner{Host: r.host, PID: int(r.pid), Token: r.token},
					ExpiresAt: r.expiresAt,
				}}
			}
			// Expired, released, granted before ReleaseAll, or garbage: take it over,
			// unless someone else changes it first.
			item.CasID = cur.CasID
			err = s.c.CompareAndSwap(item)
		}
		switch {
		case err == nil:
			return l, nil
		case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCASConflict):
			continue // lost a race: look again
		default:
			return store.Lease{}, err
		}
	}
	return store.Lease{}, &store.HeldError{Holder: store.Lease{Key: k}}
}

// Renew extends l if its owner still holds it, with compare-and-swap.
func (s *Store) Renew(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error) {
	if err := ctx.Err(); err != nil {
		return store.Lease{}, err
	}
	k := l.Key
	if err := validateLease(k, l.Owner, ttl); err != nil {
		return store.Lease{}, err
	}
	lk, gk := s.itemKey('l', k), s.genKey('h', k.Namespace)
	for range casRetries {
		if err := ctx.Err(); err != nil {
			return store.Lease{}, err
		}
		items, err := s.c.GetMulti([]string{gk, lk})
		if err != nil {
			return store.Lease{}, err
		}
		git, cur := items[gk], items[lk]
		if git == nil || cur == nil {
			return store.Lease{}, lost(l)
		}
		gen, ok := parseGen(git.Value)
		if !ok {
			return store.Lease{}, lost(l)
		}
		r, err := decodeLease(cur.Value)
		now := s.now()
		if err != nil || !s.live(r, k, gen, now) || r.token != l.Owner.Token {
			return store.Lease{}, lost(l)
		}
		nl := store.Lease{Key: k, Owner: l.Owner, ExpiresAt: now.Add(ttl)}
		r.expiresAt = nl.ExpiresAt
		err = s.c.CompareAndSwap(&memcache.Item{
			Key: lk, Value: appendLease(nil, r), Expiration: expiration(ttl), CasID: cur.CasID,
		})
		switch {
		case err == nil:
			return nl, nil
		case errors.Is(err, memcache.ErrNotStored):
			return store.Lease{}, lost(l)
		case errors.Is(err, memcache.ErrCASConflict):
			continue
		default:
			return store.Lease{}, err
		}
	}
	return store.Lease{}, fmt.Errorf("memcachestore: renew %s: too much contention", k)
}

func lost(l store.Lease) error {
	return fmt.Errorf("%w: %s by %s", store.ErrLeaseLost, l.Key, l.Owner)
}

// Release frees l if its owner still holds it, by swapping in a tombstone that
// memcached expires at once.
func (s *Store) Release(ctx context.Context, l store.Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k := l.Key
	if err := k.Validate(); err != nil {
		return err
	}
	lk := s.itemKey('l', k)
	for range casRetries {
		if err := ctx.Err(); err != nil {
			return err
		}
		cur, err := s.c.Get(lk)
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			return nil
		case err != nil:
			return err
		}
		r, err := decodeLease(cur.Value)
		if err != nil || r.token == "" || r.token != l.Owner.Token || r.ns != k.Namespace || r.id != k.ID {
			return nil // not ours
		}
		tomb := leaseRecord{gen: r.gen, ns: k.Namespace, id: k.ID}
		err = s.c.CompareAndSwap(&memcache.Item{Key: lk, Value: appendLease(nil, tomb), Expiration: -1, CasID: cur.CasID})
		switch {
		case err == nil, errors.Is(err, memcache.ErrNotStored):
			return nil
		case errors.Is(err, memcache.ErrCASConflict):
			continue
		default:
			return err
		}
	}
	return fmt.Errorf("memcachestore: release %s: too much contention", k)
}

// ReleaseAll frees every lease of the namespace by bumping its lease generation
// counter. It returns 0: memcached cannot count the leases it frees.
func (s *Store) ReleaseAll(ctx context.Context, namespace string) (int, error) {
	if err := store.ValidateNamespace(namespace); err != nil {
		return 0, err
	}
	return 0, s.bump(ctx, s.genKey('h', namespace))
}

// Close closes the client if the store was opened from a URL; a client passed to New
// stays open.
func (s *Store) Close() error {
	if s.owned {
		return s.c.Close()
	}
	return nil
}
