package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
)

// benchValueSize is the value size of the benchmarks: a typical small memoized result.
const benchValueSize = 256

// RunBenchmarks measures the operations cachier performs on every call: a hit, a
// miss, a store after computing, and taking and giving back a calculation lease.
// Stores that implement store.LiveStore also get GetLiveHit. The store is used in a
// fresh namespace, cleared at the end, and is not closed.
func RunBenchmarks(b *testing.B, s store.Store) {
	ctx := context.Background()
	ns := Namespace(b)
	b.Cleanup(func() {
		_ = s.Clear(ctx, ns)
		_, _ = s.ReleaseAll(ctx, ns)
	})
	value := patterned(benchValueSize, 1)
	const nkeys = 1024
	keys := make([]store.Key, nkeys)
	for i := range keys {
		keys[i] = store.Key{Namespace: ns, ID: fmt.Sprintf("%064x", i)} // like a SHA-256 digest
	}
	for _, k := range keys {
		if err := s.Set(ctx, k, store.Entry{Value: value, StoredAt: time.Now()}); err != nil {
			b.Fatalf("Set: %v", err)
		}
	}

	b.Run("GetHit", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Get(ctx, keys[i%nkeys]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	if ls, ok := s.(store.LiveStore); ok {
		b.Run("GetLiveHit", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := ls.GetLive(ctx, keys[i%nkeys]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("GetMiss", func(b *testing.B) {
		b.ReportAllocs()
		k := store.Key{Namespace: ns, ID: "missing"}
		for b.Loop() {
			if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
				b.Fatalf("Get of a missing key: %v", err)
			}
		}
	})
	b.Run("Set", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(benchValueSize)
		i := 0
		for b.Loop() {
			// A fresh slice per Set: the store owns what it is given.
			v := make([]byte, benchValueSize)
			copy(v, value)
			if err := s.Set(ctx, keys[i%nkeys], store.Entry{Value: v, StoredAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("AcquireRelease", func(b *testing.B) {
		b.ReportAllocs()
		o := store.Owner{Host: "bench", PID: 1, Token: "bench-" + randHex(8)}
		i := 0
		for b.Loop() {
			l, err := s.Acquire(ctx, keys[i%nkeys], o, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Release(ctx, l); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
