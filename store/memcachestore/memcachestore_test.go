package memcachestore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// maxValueSize is what the conformance suite may rely on under memcached's default
// 1 MiB item limit: room is left for the key, the record header, the longest namespace
// and ID, and memcached's own item header.
const maxValueSize = DefaultMaxItemSize - 2048

// harness makes stores on the server at addr; with meta, stores that pipeline their
// batches on connections of their own (Options.Addr).
type harness struct {
	addr string
	meta bool
}

func (h harness) MakeStore(ctx context.Context, t *testing.T) (store.Driver, error) {
	c := memcache.New(h.addr)
	c.Timeout = 5 * time.Second // 1 MiB values under -race on a busy machine
	t.Cleanup(func() { _ = c.Close() })
	var opts Options
	if h.meta {
		opts.Addr = h.addr
	}
	s, err := New(c, &opts)
	if err == nil {
		t.Cleanup(func() { _ = s.Close() })
	}
	return s, err
}

func (harness) Close() {}

// NativeTTL makes the storetest.NativeTTLHarness: the remaining TTL memcached reports
// for k's item, read with the meta command "mg <key> t" (-1 is none).
func (h harness) NativeTTL(ctx context.Context, d store.Driver, k store.Key) (time.Duration, error) {
	key := store.Unwrap(d).(*Store).itemKey(k)
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "mg %s t\r\n", key); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return 0, err
	}
	for _, f := range strings.Fields(line) {
		if rest, ok := strings.CutPrefix(f, "t"); ok && strings.HasPrefix(line, "HD") {
			secs, err := strconv.Atoi(rest)
			if err != nil {
				return 0, fmt.Errorf("mg %s: %q", key, line)
			}
			if secs < 0 {
				return -1, nil
			}
			return time.Duration(secs) * time.Second, nil
		}
	}
	return 0, fmt.Errorf("mg %s: %q", key, strings.TrimSpace(line))
}

func TestConformance(t *testing.T) {
	srv := testserver.Memcached(t)
	for _, meta := range []bool{true, false} {
		name := "pipelined"
		if !meta {
			name = "gomemcache"
		}
		t.Run(name, func(t *testing.T) {
			storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return harness{srv.Addr, meta} },
				storetest.Capabilities{NoListing: true, MaxValueSize: maxValueSize})
		})
	}
}

func newStore(t testing.TB, opts *Options) (*Store, *memcache.Client) {
	t.Helper()
	srv := testserver.Memcached(t)
	c := memcache.New(srv.Addr)
	c.Timeout = 5 * time.Second
	t.Cleanup(func() { _ = c.Close() })
	s, err := New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// TestForeignAndGarbledRecords writes bytes the store did not write where it looks, and
// checks that each is a miss matching ErrCorrupt, never a value.
func TestForeignAndGarbledRecords(t *testing.T) {
	s, c := newStore(t, nil)
	ctx := context.Background()
	ns := storetest.Namespace(t)
	k := store.Key{Namespace: ns, ID: "k"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("good value"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	good, err := c.Get(s.itemKey(k))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good.Value)
	flipped[0] ^= 1 // the header; the value's damage is the envelope's to find
	other := store.Key{Namespace: ns, ID: "other"}
	gen, _ := parseGen(mustGet(t, c, s.genKey(ns)))
	cases := map[string][]byte{
		"empty":       {},
		"short":       good.Value[:12],
		"old layout":  []byte("cmE1 the layout before store.AppendRecord, with a CRC of its own"),
		"foreign":     []byte("some other program's bytes, long enough for a header"),
		"flipped bit": flipped,
		"other key":   appendEntry(nil, gen, time.Now(), other.Namespace, other.ID, []byte("other value")),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			if err := c.Set(&memcache.Item{Key: s.itemKey(k), Value: raw}); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, k)
			if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("Get over %s bytes = %q, %v; want an error matching store.ErrNotFound and ErrCorrupt", name, got.Value, err)
			}
		})
	}
	// A garbled generation counter is a corrupt miss too, and Clear repairs it.
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(&memcache.Item{Key: s.genKey(ns), Value: []byte("garbage")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get under a garbled generation: %v; want ErrNotFound and ErrCorrupt", err)
	}
	if err := s.Clear(ctx, ns); err != nil {
		t.Fatalf("Clear over a garbled generation: %v", err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrCorrupt) {
		t.Errorf("Get after Clear repaired the generation: %v; want a plain miss", err)
	}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v2"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, k); err != nil || string(got.Value) != "v2" {
		t.Errorf("Get after repair = %q, %v; want v2", got.Value, err)
	}
}

func mustGet(t *testing.T, c *memcache.Client, key string) []byte {
	t.Helper()
	it, err := c.Get(key)
	if err != nil {
		t.Fatalf("raw Get %s: %v", key, err)
	}
	return it.Value
}

// TestEvictedGeneration checks that entries written before their generation counter
// was evicted do not come back.
func TestEvictedGeneration(t *testing.T) {
	s, c := newStore(t, nil)
	ctx := context.Background()
	k := store.Key{Namespace: storetest.Namespace(t), ID: "k"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(s.genKey(k.Namespace)); err != nil { // as an eviction would
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after the generation was evicted: %v; want a miss", err)
	}
	// A new Set creates a fresh generation; the old record is still unreachable.
	k2 := store.Key{Namespace: k.Namespace, ID: "k2"}
	if err := s.Set(ctx, k2, store.Entry{Value: []byte("v2"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of an entry from an evicted generation: %v; want a miss", err)
	}
}

// TestClearSeenByOtherStores checks that a Clear through one Store (one process) is
// seen by another on its next Get: nothing is cached per Store.
func TestClearSeenByOtherStores(t *testing.T) {
	a, _ := newStore(t, nil)
	b, _ := newStore(t, nil)
	ctx := context.Background()
	k := store.Key{Namespace: storetest.Namespace(t), ID: "k"}
	if err := a.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, k); err != nil {
		t.Fatalf("Get through b: %v", err)
	}
	if err := a.Clear(ctx, k.Namespace); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get through b after Clear through a: %v; want a miss", err)
	}
	// Prefixes separate stores completely.
	c, _ := newStore(t, &Options{Prefix: "other-app"})
	if err := c.Set(ctx, k, store.Entry{Value: []byte("c"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get through prefix %q saw prefix %q's entry: %v", a.prefix, c.prefix, err)
	}
}

// TestServerTooLarge checks the server's own refusal maps to store.ErrTooLarge, for a
// store told the limit is larger than the server's.
func TestServerTooLarge(t *testing.T) {
	s, _ := newStore(t, &Options{MaxItemSize: 8 << 20})
	ctx := context.Background()
	k := store.Key{Namespace: storetest.Namespace(t), ID: "big"}
	err := s.Set(ctx, k, store.Entry{Value: make([]byte, 2<<20), StoredAt: time.Now()})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Set of 2 MiB on a 1 MiB server: %v; want an error matching store.ErrTooLarge", err)
	}
	// The connection is not left in a bad state.
	if err := s.Set(ctx, k, store.Entry{Value: []byte("small"), StoredAt: time.Now()}); err != nil {
		t.Fatalf("Set after a refused one: %v", err)
	}
}

// TestSwap checks Swap's memcached operations: add for an absent key, cas against the
// item read, a cas to an item expired at once for a delete, and an item written before
// the namespace's last Clear counting as absent.
func TestSwap(t *testing.T) {
	s, c := newStore(t, nil)
	ctx := context.Background()
	k := store.Key{Namespace: storetest.Namespace(t), ID: "k"}
	e := func(v string) *store.Entry { return &store.Entry{Value: []byte(v), StoredAt: time.Now()} }
	swap := func(old []byte, next *store.Entry, want bool) {
		t.Helper()
		if ok, err := s.Swap(ctx, k, old, next); err != nil || ok != want {
			t.Fatalf("Swap(%q -> %v) = %v, %v; want %v", old, next, ok, err, want)
		}
	}
	swap(nil, e("a"), true)
	swap(nil, e("b"), false)
	swap([]byte("b"), e("c"), false)
	swap([]byte("a"), e("b"), true)
	if got, err := s.Get(ctx, k); err != nil || string(got.Value) != "b" {
		t.Fatalf("Get = %q, %v; want b", got.Value, err)
	}
	swap([]byte("a"), nil, false)
	swap([]byte("b"), nil, true)
	if _, err := c.Get(s.itemKey(k)); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("item after Swap(b -> nil): %v; want a cache miss", err)
	}
	swap(nil, nil, true)
	swap(nil, e("a"), true)
	if err := s.Clear(ctx, k.Namespace); err != nil {
		t.Fatal(err)
	}
	swap([]byte("a"), e("b"), false) // the old generation's item is no entry
	swap(nil, e("b"), true)          // and is replaced with cas
	if got, err := s.Get(ctx, k); err != nil || string(got.Value) != "b" {
		t.Fatalf("Get after Clear and Swap = %q, %v; want b", got.Value, err)
	}
}

func TestExpiration(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		ttl  time.Duration
		want int32
	}{
		{time.Nanosecond, 2},
		{300 * time.Millisecond, 2},
		{time.Second, 2},
		{time.Second + 1, 3},
		{time.Minute, 61},
		{0, -1},
		{-time.Second, -1},
		{365 * 24 * time.Hour, int32(now.Add(365*24*time.Hour).Unix() + 1)},
	} {
		if got := entryExpiration(now.Add(tc.ttl), now); got != tc.want {
			t.Errorf("entryExpiration(now+%s) = %d, want %d", tc.ttl, got, tc.want)
		}
	}
	if got := entryExpiration(time.Time{}, now); got != 0 {
		t.Errorf("entryExpiration of no expiry = %d, want 0", got)
	}
}

func TestNewRejects(t *testing.T) {
	c := memcache.New("127.0.0.1:1")
	for name, o := range map[string]*Options{
		"space in prefix":   {Prefix: "a b"},
		"control in prefix": {Prefix: "a\nb"},
		"long prefix":       {Prefix: strings.Repeat("p", MaxPrefixLen+1)},
		"tiny items":        {MaxItemSize: 100},
	} {
		if _, err := New(c, o); err == nil {
			t.Errorf("New with %s: no error", name)
		}
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("New(nil): no error")
	}
}

// FuzzDecode feeds arbitrary bytes to the record decoders: they may refuse, never panic,
// and what they accept re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(appendEntry(nil, 7, time.Unix(1, 2), "ns", "id", []byte("value")))
	f.Add([]byte("cE1"))
	f.Add(appendEntryExp(nil, 7, time.Unix(1, 2), time.Unix(60, 3), "ns", "id", []byte("value")))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeEntry(b); err == nil {
			if again := appendEntryExp(nil, r.gen, r.storedAt, r.expiresAt, r.ns, r.id, r.value); !bytes.Equal(again, b) {
				t.Errorf("entry %x re-encodes to %x", b, again)
			}
		}
	})
}

// TestConformanceGenerationTTL runs the suite with the generation cache on: a Store
// must still see its own Clears at once.
func TestConformanceGenerationTTL(t *testing.T) {
	srv := testserver.Memcached(t)
	storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return ttlHarness{harness{srv.Addr, true}} },
		storetest.Capabilities{NoListing: true, MaxValueSize: maxValueSize})
}

type ttlHarness struct{ harness }

func (h ttlHarness) MakeStore(ctx context.Context, t *testing.T) (store.Driver, error) {
	c := memcache.New(h.addr)
	c.Timeout = 5 * time.Second
	t.Cleanup(func() { _ = c.Close() })
	return New(c, &Options{GenerationTTL: time.Hour})
}

// TestGenerationTTLSeesNewerEntries checks that with the generation cache on, an entry
// written after another process's Clear is still found (the cached counter is only
// trusted when the entry agrees with it).
func TestGenerationTTLSeesNewerEntries(t *testing.T) {
	a, _ := newStore(t, &Options{GenerationTTL: time.Hour})
	b, _ := newStore(t, nil)
	ctx := context.Background()
	k := store.Key{Namespace: storetest.Namespace(t), ID: "k"}
	if err := a.Set(ctx, k, store.Entry{Value: []byte("old"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Get(ctx, k); err != nil || string(got.Value) != "old" {
		t.Fatalf("Get = %q, %v", got.Value, err)
	}
	if err := b.Clear(ctx, k.Namespace); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, k, store.Entry{Value: []byte("new"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Get(ctx, k); err != nil || string(got.Value) != "new" {
		t.Errorf("Get through the caching store after another's Clear and Set = %q, %v; want new", got.Value, err)
	}
}

// appendEntry is appendEntryExp of an entry without expiry.
func appendEntry(dst []byte, gen uint64, storedAt time.Time, ns, id string, value []byte) []byte {
	return appendEntryExp(dst, gen, storedAt, time.Time{}, ns, id, value)
}

// TestRandomGen checks that a new generation counter starts odd (never zero) and
// below 2^63, so that incr has 2^63 steps before memcached wraps it at 2^64, and
// random over that range, so that a counter memcached evicted comes back as a value
// no old record holds: the counter created by a first Set included.
func TestRandomGen(t *testing.T) {
	const n = 1000 // a draw that breaks a rule half the time passes n of them with p = 2^-n
	check := func(what string, g uint64) {
		t.Helper()
		if g%2 == 0 || g >= 1<<63 {
			t.Fatalf("%s = %d (%#x); want an odd number below 2^63", what, g, g)
		}
	}
	high := 0 // draws at or above 2^62: about half of them
	seen := make(map[uint64]bool, n)
	for range n {
		g := randomGen()
		check("randomGen()", g)
		if g >= 1<<62 {
			high++
		}
		seen[g] = true
	}
	if high == 0 || high == n || len(seen) < n {
		t.Errorf("randomGen: %d distinct values in %d draws, %d at or above 2^62; want random values below 2^63", len(seen), n, high)
	}

	// Counters created by first Sets: a writer that broke both rules would pass
	// each with p = 1/4, so there are enough of them.
	s, c := newStore(t, nil)
	for i := range 24 {
		ns := fmt.Sprintf("%s-%d", storetest.Namespace(t), i)
		if err := s.Set(context.Background(), store.Key{Namespace: ns, ID: "k"}, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		it, err := c.Get(s.genKey(ns))
		if err != nil {
			t.Fatal(err)
		}
		g, ok := parseGen(it.Value)
		if !ok {
			t.Fatalf("generation counter holds %q", it.Value)
		}
		check("the counter a first Set creates", g)
	}
}
