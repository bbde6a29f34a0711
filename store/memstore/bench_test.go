package memstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

const benchKeys = 1024

func benchKeySet() []store.Key {
	keys := make([]store.Key, benchKeys)
	for i := range keys {
		keys[i] = store.Key{Namespace: "example.com/app.fetchReport", ID: fmt.Sprintf("%064x", i)}
	}
	return keys
}

// memo is the yardstick: the hand-written memo a user would write instead of cachier,
// one mutex around one map from key to decoded value.
type memo struct {
	mu sync.Mutex
	m  map[store.Key]any
}

func (m *memo) get(k store.Key) (any, bool) {
	m.mu.Lock()
	v, ok := m.m[k]
	m.mu.Unlock()
	return v, ok
}

// BenchmarkGetLive compares a GetLive hit with the hand-written memo, serially and
// with every core reading. The design target is a ratio under 2.
func BenchmarkGetLive(b *testing.B) {
	ctx := context.Background()
	keys := benchKeySet()
	s := memstore.New(nil)
	bounded := memstore.New(&memstore.Options{MaxEntries: 10 * benchKeys, MaxBytes: 1 << 30})
	m := &memo{m: map[store.Key]any{}}
	for i, k := range keys {
		for _, st := range []*memstore.Store{s, bounded} {
			if err := st.SetLive(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}, i); err != nil {
				b.Fatal(err)
			}
		}
		m.m[k] = i
	}
	stores := []struct {
		name string
		s    *memstore.Store
	}{{"memstore", s}, {"memstore-bounded", bounded}}

	b.Run("memo", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := m.get(keys[i%benchKeys]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := st.s.GetLive(ctx, keys[i%benchKeys]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("memo-parallel", func(b *testing.B) {
		b.ReportAllocs()
		var g atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(g.Add(1)) * 389 // goroutines read different keys, not in lockstep
			for pb.Next() {
				if _, ok := m.get(keys[i%benchKeys]); !ok {
					b.Error("miss")
					return
				}
				i++
			}
		})
	})
	for _, st := range stores {
		b.Run(st.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			var g atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(g.Add(1)) * 389
				for pb.Next() {
					if _, _, err := st.s.GetLive(ctx, keys[i%benchKeys]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkGetLiveHotKey has every core read the same key: the worst case for the
// per-shard read lock, whose reader count every hit writes.
func BenchmarkGetLiveHotKey(b *testing.B) {
	ctx := context.Background()
	k := benchKeySet()[0]
	s := memstore.New(nil)
	m := &memo{m: map[store.Key]any{k: 1}}
	if err := s.SetLive(ctx, k, store.Entry{Value: []byte("v")}, 1); err != nil {
		b.Fatal(err)
	}
	b.Run("memo-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.get(k)
			}
		})
	})
	b.Run("memstore-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _, _ = s.GetLive(ctx, k)
			}
		})
	})
}

// BenchmarkSetEvicting measures a Set into a full bounded store, each one evicting.
func BenchmarkSetEvicting(b *testing.B) {
	ctx := context.Background()
	s := memstore.New(&memstore.Options{MaxEntries: benchKeys})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := store.Key{Namespace: "ns", ID: fmt.Sprint(i)}
		if err := s.Set(ctx, k, store.Entry{Value: []byte("v")}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
