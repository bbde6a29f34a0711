package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/maypok86/otter/v2"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// TestZipfHitRatio replays one Zipf trace against memstore's CLOCK and otter v2's
// W-TinyLFU at the same entry bounds, and reports the hit ratios side by side: the
// figures behind the choice of memstore's eviction (see memstore's package docs).
//
//	go test -run TestZipfHitRatio -v ./bench
func TestZipfHitRatio(t *testing.T) {
	const (
		keys     = 100_000
		requests = 1_000_000
	)
	ctx := context.Background()
	for _, s := range []float64{1.01, 1.2} {
		r := rand.New(rand.NewPCG(1, 2))
		z := rand.NewZipf(r, s, 1, keys-1)
		trace := make([]uint64, requests)
		for i := range trace {
			trace[i] = z.Uint64()
		}
		for _, capacity := range []int{100, 1_000, 10_000} {
			ms := memstore.New(&memstore.Options{MaxEntries: capacity})
			var msHits int
			for _, k := range trace {
				key := store.Key{Namespace: "zipf", ID: fmt.Sprint(k)}
				if _, err := ms.Get(ctx, key); err == nil {
					msHits++
					continue
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Fatal(err)
				}
				if err := ms.Set(ctx, key, store.Entry{Value: []byte{1}}); err != nil {
					t.Fatal(err)
				}
			}
			oc := otter.Must(&otter.Options[uint64, struct{}]{MaximumSize: capacity})
			var otHits int
			for _, k := range trace {
				if _, ok := oc.GetIfPresent(k); ok {
					otHits++
					continue
				}
				oc.Set(k, struct{}{})
			}
			t.Logf("zipf s=%.2f keys=%d requests=%d capacity=%d: memstore CLOCK %.2f%%, otter v2 W-TinyLFU %.2f%%",
				s, keys, requests, capacity, 100*float64(msHits)/requests, 100*float64(otHits)/requests)
		}
	}
}
