package memcachestore

import (
	"errors"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier/store/storetest"
)

// BenchmarkGet compares the store's Get with gomemcache's own Get of the same bytes on
// the same server, hit and miss. Read the ratios from one run:
//
//	go test -run '^$' -bench 'Get$' ./store/memcachestore
func BenchmarkGet(b *testing.B) {
	s, c := newStore(b, nil)
	k, missing := storetest.BenchEntry(b, s)
	raw, err := c.Get(s.itemKey(k)) // the very record the store reads
	if err != nil {
		b.Fatal(err)
	}
	rawKey := "bench:raw:" + s.itemKey(k)[len(s.prefix)+3:]
	if err := c.Set(&memcache.Item{Key: rawKey, Value: raw.Value}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Delete(rawKey) })

	b.Run("hit/store", storetest.BenchGetHit(s, k))
	b.Run("hit/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Get(rawKey); err != nil {
				b.Fatal(err)
			}
		}
	})
	cached, _ := newStore(b, &Options{GenerationTTL: time.Minute})
	b.Run("hit/store-gen-ttl", storetest.BenchGetHit(cached, k))
	// What one Get would cost if it read the counter and then the entry, in turn.
	b.Run("hit/raw-two-gets", func(b *testing.B) {
		b.ReportAllocs()
		gk := s.genKey(k.Namespace)
		for b.Loop() {
			if _, err := c.Get(gk); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Get(rawKey); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("miss/store", storetest.BenchGetMiss(s, missing))
	b.Run("miss/store-gen-ttl", storetest.BenchGetMiss(cached, missing))
	b.Run("miss/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Get("bench:raw:missing"); !errors.Is(err, memcache.ErrCacheMiss) {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStore runs the shared store benchmarks.
func BenchmarkStore(b *testing.B) {
	s, _ := newStore(b, nil)
	storetest.RunBenchmarks(b, s)
}
