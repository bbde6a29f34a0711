package memstore

import (
	"context"
	"testing"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

type collidingHarness struct {
	opts *Options
	mask uint64
}

func (h collidingHarness) MakeStore(context.Context, *testing.T) (store.Driver, error) {
	s := New(h.opts)
	s.hashMask = h.mask
	return s, nil
}

// someCollide keeps 64 shards but only 8 hashes per shard, so most keys share a chain.
const someCollide = 0x3f | 0x7<<6

func (collidingHarness) Close() {}

// TestConformanceCollidingHashes runs the suite on a store whose hashes collide all the
// time, so that the collision chains are as exercised as the plain path.
func TestConformanceCollidingHashes(t *testing.T) {
	t.Run("Unbounded", func(t *testing.T) {
		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return collidingHarness{mask: someCollide} }, storetest.Capabilities{})
	})
	// One shard, one hash: every key of the store is in one chain, so keys that differ
	// in any way (namespace only, case only) must be told apart by the full key.
	t.Run("AllCollide", func(t *testing.T) {
		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return collidingHarness{mask: 0} }, storetest.Capabilities{})
	})
	t.Run("Bounded", func(t *testing.T) {
		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness {
			return collidingHarness{opts: &Options{MaxEntries: 100_000, MaxBytes: 1 << 28}, mask: someCollide}
		}, storetest.Capabilities{})
	})
}

func TestCollidingEviction(t *testing.T) {
	ctx := context.Background()
	s := New(&Options{MaxEntries: 20})
	s.hashMask = 0x3f | 1<<6
	for i := range 500 {
		k := store.Key{Namespace: "ns", ID: string(rune('a'+i%26)) + string(rune('a'+i/26))}
		if err := s.Set(ctx, k, store.Entry{Value: []byte(k.ID)}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, k)
		if err != nil || string(got.Value) != k.ID {
			t.Fatalf("Get(%s) right after Set = %q, %v", k, got.Value, err)
		}
		if s.Len() > 20 {
			t.Fatalf("%d entries, bound 20", s.Len())
		}
	}
	// Every listed entry reads back its own value.
	n := 0
	for info, err := range s.Entries(ctx, "ns") {
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, info.Key)
		if err != nil || string(got.Value) != info.Key.ID {
			t.Errorf("Get(%s) = %q, %v", info.Key, got.Value, err)
		}
		n++
	}
	if n != s.Len() {
		t.Errorf("listed %d, Len %d", n, s.Len())
	}
}
