package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// TestCounterRecords checks what memcached adds to the conformance suite: an evicted
// counter reads as 0 again (so anything recorded at a bump's non-zero value is a
// miss), and a record that is not the counter's is an error, never a value.
func TestCounterRecords(t *testing.T) {
	s, c := newStore(t, nil)
	ctx := context.Background()
	name := "tag:" + storetest.Namespace(t) + ":é漢字 {x}"
	v, err := s.Bump(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Versions(ctx, []string{name, name}); err != nil || !slices.Equal(got, []uint64{v, v}) {
		t.Fatalf("Versions = %v, %v; want [%d %d]", got, err, v, v)
	}

	// Eviction: the counter reads as 0, which no entry stored after the bump recorded.
	if err := c.Delete(s.counterKey(name)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Versions(ctx, []string{name}); err != nil || got[0] != 0 {
		t.Errorf("Versions of an evicted counter = %v, %v; want [0]", got, err)
	}

	// Foreign bytes, another counter's record, and a damaged record are errors.
	other := appendCounter(nil, name+"x", 7)
	damaged := appendCounter(nil, name, 7)
	damaged[5] ^= 1
	for what, b := range map[string][]byte{
		"foreign":         []byte("12345"),
		"another counter": other,
		"damaged":         damaged,
		"short":           damaged[:counterHeader-1],
	} {
		if err := c.Set(&memcache.Item{Key: s.counterKey(name), Value: b}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Versions(ctx, []string{name}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s record: Versions = %v, %v; want ErrCorrupt", what, got, err)
		}
	}
	// Bump replaces whatever is there.
	if v, err = s.Bump(ctx, name); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Versions(ctx, []string{name}); err != nil || got[0] != v {
		t.Errorf("Versions after Bump over a garbled record = %v, %v; want [%d]", got, err, v)
	}

	// Names are hashed into keys: the longest allowed name fits memcached's key limit.
	long := strings.Repeat("é", store.MaxIDLen/2)
	if _, err := s.Bump(ctx, long); err != nil {
		t.Errorf("Bump of a %d-byte name: %v", len(long), err)
	}
	if _, err := s.Bump(ctx, long+"x"); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("Bump of a name longer than the contract allows: %v; want ErrInvalidKey", err)
	}
	if _, err := s.Versions(ctx, []string{"ok", ""}); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("Versions with an empty name: %v; want ErrInvalidKey", err)
	}
}

func TestGetVersioned(t *testing.T) {
	for _, ttl := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("GenerationTTL=", ttl), func(t *testing.T) {
			s, _ := newStore(t, &Options{GenerationTTL: ttl})
			ctx := context.Background()
			ns := storetest.Namespace(t)
			names := []string{"tag:" + ns + ":a", "tag:" + ns + ":b", "tag:" + ns + ":a"}
			a, err := s.Bump(ctx, names[0])
			if err != nil {
				t.Fatal(err)
			}
			k := store.Key{Namespace: ns, ID: "k"}
			if _, vs, err := s.GetVersioned(ctx, k, names); !errors.Is(err, store.ErrNotFound) || vs != nil {
				t.Errorf("GetVersioned of a missing entry = %v, %v; want ErrNotFound and no versions", vs, err)
			}
			if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			e, vs, err := s.GetVersioned(ctx, k, names)
			if err != nil || string(e.Value) != "v" || !slices.Equal(vs, []uint64{a, 0, a}) {
				t.Errorf("GetVersioned = %q, %v, %v; want %q, [%d 0 %d]", e.Value, vs, err, "v", a, a)
			}
			if _, vs, err := s.GetVersioned(ctx, k, nil); err != nil || len(vs) != 0 {
				t.Errorf("GetVersioned without counters = %v, %v", vs, err)
			}
			// A Clear is seen at once, as by Get.
			if err := s.Clear(ctx, ns); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.GetVersioned(ctx, k, names); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetVersioned after Clear: %v; want ErrNotFound", err)
			}
		})
	}
}

// BenchmarkGetVersioned compares a plain Get, GetVersioned with 3 counters (one
// GetMulti) and Get followed by Versions (two round trips): see
// storetest.BenchmarkVersioned.
func BenchmarkGetVersioned(b *testing.B) {
	s, _ := newStore(b, nil)
	storetest.BenchmarkVersioned(b, s)
}
