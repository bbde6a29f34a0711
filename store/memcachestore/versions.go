package memcachestore

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier/store"
)

var (
	_ store.Versioner       = (*Store)(nil)
	_ store.VersionedGetter = (*Store)(nil)
)

// A counter record names its counter, so that bytes some other program wrote under
// the prefix (or, in theory, a hash collision) are never read as its value:
//
//	counter: "cmV1" value:u64 nameLen:u16 crc:u32 name
const (
	counterMagic  = "cmV1"
	counterHeader = 4 + 8 + 2 + 4
)

// counterKey is the item key of the named counter: kind 'v', the SHA-256 of the name.
func (s *Store) counterKey(name string) string { return s.genKey('v', name) }

func appendCounter(dst []byte, name string, v uint64) []byte {
	start := len(dst)
	dst = append(dst, counterMagic...)
	dst = binary.BigEndian.AppendUint64(dst, v)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name))) // at most store.MaxIDLen
	crcAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, name...)
	binary.BigEndian.PutUint32(dst[crcAt:], checksum(dst[start:], crcAt-start))
	return dst
}

// decodeCounter returns the value of a counter record, which must belong to name.
func decodeCounter(b []byte, name string) (uint64, error) {
	if len(b) < counterHeader {
		return 0, errShort
	}
	if string(b[:4]) != counterMagic {
		return 0, errMagic
	}
	const crcAt = counterHeader - 4
	if binary.BigEndian.Uint32(b[crcAt:]) != checksum(b, crcAt) {
		return 0, errChecksum
	}
	if int(binary.BigEndian.Uint16(b[12:])) != len(b)-counterHeader {
		return 0, errLength
	}
	if string(b[counterHeader:]) != name {
		return 0, fmt.Errorf("record belongs to counter %q", truncate(b[counterHeader:]))
	}
	return binary.BigEndian.Uint64(b[4:]), nil
}

// Counter names are checked with store.ValidateCounter; item keys hold the name's
// hash, so no character needs escaping.

// Versions returns the current value of each named counter with one GetMulti (one
// request per server holding any of them, sent in parallel). A missing counter (never
// bumped, or evicted: see the package doc) reads as 0. A record that is not this
// counter's is an error matching ErrCorrupt, never a value.
func (s *Store) Versions(ctx context.Context, names []string) ([]uint64, error) {
	keys := make([]string, len(names))
	for i, n := range names {
		if err := store.ValidateCounter(n); err != nil {
			return nil, err
		}
		keys[i] = s.counterKey(n)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]uint64, len(names))
	if len(names) == 0 {
		return out, nil
	}
	items, err := s.c.GetMulti(keys)
	if err != nil {
		return nil, err
	}
	if err := countersOf(out, names, keys, items); err != nil {
		return nil, err
	}
	return out, nil
}

// countersOf decodes the named counters, under keys, from the items of a GetMulti.
func countersOf(out []uint64, names, keys []string, items map[string]*memcache.Item) error {
	for i, n := range names {
		it := items[keys[i]]
		if it == nil {
			out[i] = 0
			continue
		}
		v, err := decodeCounter(it.Value, n)
		if err != nil {
			return fmt.Errorf("memcachestore: counter %q: %w: %w", n, ErrCorrupt, err)
		}
		out[i] = v
	}
	return nil
}

// GetVersioned returns the entry of k and the current value of each named counter
// with one GetMulti: the namespace's generation counter, the entry and the counters
// together, so a hit on a tagged entry costs what an untagged Get costs (one request
// per server concerned, in parallel). It always reads the generation counter, even
// with Options.GenerationTTL, since it makes the round trip anyway.
func (s *Store) GetVersioned(ctx context.Context, k store.Key, names []string) (store.Entry, []uint64, error) {
	if err := ctx.Err(); err != nil {
		return store.Entry{}, nil, err
	}
	if err := k.Validate(); err != nil {
		return store.Entry{}, nil, err
	}
	gk, ek := s.genKey('g', k.Namespace), s.itemKey('e', k)
	keys := make([]string, 2, 2+len(names))
	keys[0], keys[1] = gk, ek
	for _, n := range names {
		if err := store.ValidateCounter(n); err != nil {
			return store.Entry{}, nil, err
		}
		keys = append(keys, s.counterKey(n))
	}
	clears := s.clearCount()
	items, err := s.c.GetMulti(keys)
	if err != nil {
		return store.Entry{}, nil, err
	}
	e, err := s.entryOf(k, gk, ek, items, clears)
	if err != nil {
		return store.Entry{}, nil, err
	}
	out := make([]uint64, len(names))
	if err := countersOf(out, names, keys[2:], items); err != nil {
		return store.Entry{}, nil, err
	}
	return e, out, nil
}

// Bump sets the named counter to a fresh random non-zero value with one memcached set
// and returns it. A random value rather than incr: an evicted counter that incr
// recreated would restart from a value entries may already hold, while a random one
// is new however often the counter was lost. Concurrent bumps may overwrite each
// other; each leaves a value no entry has recorded.
func (s *Store) Bump(ctx context.Context, name string) (uint64, error) {
	if err := store.ValidateCounter(name); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	v := store.NewVersion()
	if err := s.c.Set(&memcache.Item{Key: s.counterKey(name), Value: appendCounter(nil, name, v)}); err != nil {
		return 0, err
	}
	return v, nil
}
