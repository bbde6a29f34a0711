package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

func TestVersionKey(t *testing.T) {
	kr, err := newKeyer("p")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"tag:book:7", "../../x", "{tag}", "é漢字", "with space", "a\tb", "}:v", "%7B", "*"}
	seen := map[string]string{}
	for _, n := range names {
		key := kr.versionKey(n)
		if prev, dup := seen[key]; dup {
			t.Errorf("%q and %q share the counter key %q", prev, n, key)
		}
		seen[key] = n
		// One hash tag, and nothing SCAN patterns of entries, leases or namespaces match.
		if strings.Count(key, "{") != 1 || strings.Count(key, "}") != 1 || !strings.HasSuffix(key, "}") {
			t.Errorf("counter key %q of %q: want exactly one hash tag, at the end", key, n)
		}
		if strings.HasPrefix(key, "p:{") {
			t.Errorf("counter key %q of %q is under the entries' prefix", key, n)
		}
		if _, _, ok := kr.parse(key); ok {
			t.Errorf("counter key %q parses as a record", key)
		}
	}
	if err := store.ValidateCounter(""); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("empty counter name: %v", err)
	}
	if err := store.ValidateCounter(strings.Repeat("x", store.MaxIDLen+1)); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("long counter name: %v", err)
	}
	if err := store.ValidateCounter("a\x00b"); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("counter name with NUL: %v", err)
	}
}

func TestGetVersioned(t *testing.T) {
	t.Run("single", func(t *testing.T) { testGetVersioned(t, singleClient(t)) })
	t.Run("cluster", func(t *testing.T) { testGetVersioned(t, clusterClient(t)) })
}

func testGetVersioned(t *testing.T, c redis.UniversalClient) {
	s, err := New(c, &Options{Prefix: "cachier-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	ns := storetest.Namespace(t)
	t.Cleanup(func() { _ = s.Clear(ctx, ns) })
	// Enough counters to land on several slots of a cluster.
	names := make([]string, 8)
	for i := range names {
		names[i] = fmt.Sprintf("tag:%s:%d", ns, i)
	}
	want := make([]uint64, len(names))
	for i := range names {
		if i%2 == 0 {
			if want[i], err = s.Bump(ctx, names[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	k := store.Key{Namespace: ns, ID: "k"}
	if _, v, err := s.GetVersioned(ctx, k, names); !errors.Is(err, store.ErrNotFound) || v != nil {
		t.Errorf("GetVersioned of a missing entry = %v, %v; want ErrNotFound and no versions", v, err)
	}
	at := time.Now()
	if err := s.Set(ctx, k, store.Entry{Value: []byte("value"), StoredAt: at}); err != nil {
		t.Fatal(err)
	}
	e, got, err := s.GetVersioned(ctx, k, names)
	if err != nil || string(e.Value) != "value" || !e.StoredAt.Equal(at) || !slices.Equal(got, want) {
		t.Errorf("GetVersioned = %q at %v, %v, %v; want %q at %v, %v", e.Value, e.StoredAt, got, err, "value", at, want)
	}
	if e, got, err := s.GetVersioned(ctx, k, nil); err != nil || string(e.Value) != "value" || len(got) != 0 {
		t.Errorf("GetVersioned without counters = %q, %v, %v", e.Value, got, err)
	}
	if _, _, err := s.GetVersioned(ctx, k, []string{""}); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("GetVersioned with an empty counter name: %v; want ErrInvalidKey", err)
	}
	// Counters are neither namespaces nor entries.
	nss, err := s.Namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nss {
		if strings.Contains(n, "tag:") {
			t.Errorf("Namespaces lists counter %q", n)
		}
	}
	// A garbled counter is an error, not a silent 0.
	if err := c.Set(ctx, s.keys.versionKey(names[1]), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Versions(ctx, names[:2]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Versions of a garbled counter: %v; want ErrCorrupt", err)
	}
	if err := c.Del(ctx, s.keys.versionKey(names[1])).Err(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkGetVersioned compares a plain Get, GetVersioned with 3 counters (one round
// trip) and Get followed by Versions (two): see storetest.BenchmarkVersioned.
func BenchmarkGetVersioned(b *testing.B) {
	b.Run("single", func(b *testing.B) { benchGetVersioned(b, singleClient(b)) })
	b.Run("cluster", func(b *testing.B) { benchGetVersioned(b, clusterClient(b)) })
}

func benchGetVersioned(b *testing.B, c redis.UniversalClient) {
	s, err := New(c, &Options{Prefix: "cachier-bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	storetest.BenchmarkVersioned(b, s)
}
