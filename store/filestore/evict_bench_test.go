package filestore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
)

// BenchmarkGetCapped is a hit on a capped store, which stamps the entry's recency at
// most once a second: compare with BenchmarkGet.
func BenchmarkGetCapped(b *testing.B) {
	s := newStore(b, &filestore.Options{Dir: b.TempDir(), MaxEntries: 1 << 20})
	ctx := context.Background()
	k := store.Key{Namespace: "bench", ID: "k"}
	if err := s.Set(ctx, k, store.Entry{Value: make([]byte, 100), StoredAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSweep is one sweep over 10,000 entries that are within the cap: the cost a
// writer pays once per twentieth of the cap it writes.
func BenchmarkSweep(b *testing.B) {
	s := newStore(b, &filestore.Options{Dir: b.TempDir(), MaxEntries: 1 << 20})
	ctx := context.Background()
	for i := range 10_000 {
		k := store.Key{Namespace: fmt.Sprint("ns", i%10), ID: fmt.Sprint(i)}
		if err := s.Set(ctx, k, store.Entry{Value: make([]byte, 100), StoredAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sweep(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
