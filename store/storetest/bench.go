package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
func RunBenchmarks(b *testing.B, d store.Driver) {
	s := store.Adapt(d)
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

	b.Run("GetHit", BenchGetHit(s, keys...))
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
	b.Run("GetMiss", BenchGetMiss(s, store.Key{Namespace: ns, ID: "missing"}))
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

// BenchmarkVersioned measures what a hit on a tagged entry costs. Each iteration times,
// one after the other, a plain Get of an untagged hit, GetVersioned of the same hit
// with 3 counters (2 of them bumped), and Get followed by Versions of the same
// counters, so that all three see the same load on a shared machine. It reports
// their latencies (get-ns/op, getversioned-ns/op, get+versions-ns/op) and the ratios
// to Get (getversioned/get, get+versions/get). s must implement store.Versioner and
// store.VersionedGetter. The store is used in a fresh namespace, cleared at the end,
// and is not closed.
func BenchmarkVersioned(b *testing.B, d store.Driver) {
	s := store.Adapt(d)
	vs, ok1 := s.(store.Versioner)
	vg, ok2 := s.(store.VersionedGetter)
	if !ok1 || !ok2 {
		b.Fatalf("%T does not implement store.Versioner and store.VersionedGetter", s)
	}
	ctx := context.Background()
	k, _ := BenchEntry(b, s)
	ns := k.Namespace
	names := []string{"tag:" + ns + ":a", "tag:" + ns + ":b", "tag:" + ns + ":c"}
	for _, n := range names[:2] {
		if _, err := vs.Bump(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	var getT, gvT, twoT time.Duration
	for b.Loop() {
		t0 := time.Now()
		_, err1 := s.Get(ctx, k)
		t1 := time.Now()
		_, _, err2 := vg.GetVersioned(ctx, k, names)
		t2 := time.Now()
		_, err3 := s.Get(ctx, k)
		_, err4 := vs.Versions(ctx, names)
		t3 := time.Now()
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			b.Fatal(err)
		}
		getT += t1.Sub(t0)
		gvT += t2.Sub(t1)
		twoT += t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(getT.Nanoseconds())/n, "get-ns/op")
	b.ReportMetric(float64(gvT.Nanoseconds())/n, "getversioned-ns/op")
	b.ReportMetric(float64(twoT.Nanoseconds())/n, "get+versions-ns/op")
	b.ReportMetric(float64(gvT)/float64(getT), "getversioned/get")
	b.ReportMetric(float64(twoT)/float64(getT), "get+versions/get")
}

// BenchEntry prepares a store's own Get benchmarks, such as one comparing it with the
// engine's client reading the same record: it stores a zeroed 256-byte value under a
// digest-like ID in a fresh namespace, cleared when b ends, and returns that key and
// one of the same namespace that has no entry.
func BenchEntry(b *testing.B, s store.Driver) (hit, missing store.Key) {
	b.Helper()
	ctx := context.Background()
	ns := Namespace(b)
	hit = store.Key{Namespace: ns, ID: strings.Repeat("0123456789abcdef", 4)}
	b.Cleanup(func() { _ = s.Delete(ctx, hit) })
	if err := s.Set(ctx, hit, store.Entry{Value: make([]byte, benchValueSize), StoredAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	return hit, store.Key{Namespace: ns, ID: "missing"}
}

// BenchGetHit returns a benchmark, for b.Run, of s.Get of ks in turn, which must all
// hit.
func BenchGetHit(s store.Driver, ks ...store.Key) func(*testing.B) {
	return func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Get(ctx, ks[i%len(ks)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
}

// BenchGetMiss returns a benchmark, for b.Run, of s.Get(k), which must miss.
func BenchGetMiss(s store.Driver, k store.Key) func(*testing.B) {
	return func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
				b.Fatal(err)
			}
		}
	}
}

// Alternate runs b's loop over two operations in turn, store then raw, timing each,
// and reports both latencies (store-ns/op, raw-ns/op) and their ratio (store/raw):
// a ratio from the same moments of one run, whatever the machine's load does
// meanwhile. It fails b on the first error of either.
func Alternate(b *testing.B, store, raw func() error) {
	b.Helper()
	var storeT, rawT time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := store(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := raw(); err != nil {
			b.Fatal(err)
		}
		storeT += t1.Sub(t0)
		rawT += time.Since(t1)
	}
	b.ReportMetric(float64(storeT.Nanoseconds())/float64(b.N), "store-ns/op")
	b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(storeT)/float64(rawT), "store/raw")
}
