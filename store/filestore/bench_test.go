package filestore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
)

// Benchmarks of the file store against the cheapest possible read of a file of the
// same size (BenchmarkRawReadFile), so that the overhead of a hit reads off as a
// ratio in one run:
//
//	go test -run x -bench . -benchtime 2000x ./store/filestore/

// benchValueSize is a typical small encoded result.
const benchValueSize = 128

// benchID returns the i-th ID, shaped like cachier's argument digests.
func benchID(i int) string {
	h := sha256.Sum256([]byte(strconv.Itoa(i)))
	return hex.EncodeToString(h[:])
}

func benchValue() []byte {
	v := make([]byte, benchValueSize)
	for i := range v {
		v[i] = byte(i)
	}
	return v
}

// populate fills a new store with n entries and returns it with its keys.
func populate(b *testing.B, dir string, n int) (*filestore.Store, []store.Key) {
	b.Helper()
	s, err := filestore.New(&filestore.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	keys := make([]store.Key, n)
	for i := range keys {
		keys[i] = store.Key{Namespace: "bench.fn", ID: benchID(i)}
	}
	// Writing is mostly waiting for the file system, so a few writers fill it faster.
	v := benchValue()
	const writers = 8
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += writers {
				errs[w] = s.Set(ctx, keys[i], store.Entry{Value: v, StoredAt: time.Now()})
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return s, keys
}

// BenchmarkGet measures a hit with 1k, 10k and 100k entries in the namespace; the
// cost should not depend on the count.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			if n > 10_000 && testing.Short() {
				b.Skip("100k files take a while to create; skipped with -short")
			}
			s, keys := populate(b, b.TempDir(), n)
			defer s.Close()
			// Visit keys in a scattered order, so that the benchmark does not read one
			// directory's files in turn.
			const stride = 7919 // prime, coprime with every n here
			b.SetBytes(benchValueSize)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				e, err := s.Get(ctx, keys[(i*stride)%n])
				if err != nil || len(e.Value) != benchValueSize {
					b.Fatalf("Get = %d bytes, %v", len(e.Value), err)
				}
			}
		})
	}
}

// BenchmarkRawReadFile is the floor for BenchmarkGet: os.Open, io.ReadAll and Close of
// one file the size of an encoded entry.
func BenchmarkRawReadFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "raw")
	// Header, 64-byte ID, value: the size of one BenchmarkGet entry file.
	if err := os.WriteFile(path, make([]byte, 36+64+benchValueSize), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchValueSize)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		data, err := io.ReadAll(f)
		if err != nil || len(data) == 0 {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkRawWriteRename is the floor for BenchmarkSet: create a temporary file,
// write an entry's worth of bytes, close it and rename it over the target.
func BenchmarkRawWriteRename(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 36+64+benchValueSize)
	b.SetBytes(benchValueSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f, err := os.CreateTemp(dir, ".tmp-")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(f.Name(), filepath.Join(dir, strconv.Itoa(i%1000))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSet measures replacing entries (temporary file, write, rename), with and
// without fsync.
func BenchmarkSet(b *testing.B) {
	ctx := context.Background()
	for _, fsync := range []bool{false, true} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			s, err := filestore.New(&filestore.Options{Dir: b.TempDir(), Fsync: fsync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const n = 1000
			keys := make([]store.Key, n)
			for i := range keys {
				keys[i] = store.Key{Namespace: "bench.fn", ID: benchID(i)}
			}
			e := store.Entry{Value: benchValue(), StoredAt: time.Now()}
			b.SetBytes(benchValueSize)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := s.Set(ctx, keys[i%n], e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGetMiss measures a miss: the open fails, nothing is read.
func BenchmarkGetMiss(b *testing.B) {
	ctx := context.Background()
	s, err := filestore.New(&filestore.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	k := store.Key{Namespace: "bench.fn", ID: benchID(0)}
	b.ReportAllocs()
	for range b.N {
		if _, err := s.Get(ctx, k); err == nil {
			b.Fatal("hit")
		}
	}
}

// BenchmarkGetVsRaw interleaves a hit and a raw os.Open+io.ReadAll+Close of the same
// entry file, and reports their mean times and ratio. On a busy machine the separate
// benchmarks above swing by several times from run to run; interleaving makes both
// sides see the same load, so the ratio stays meaningful.
func BenchmarkGetVsRaw(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			if n > 10_000 && testing.Short() {
				b.Skip("100k files take a while to create; skipped with -short")
			}
			s, keys := populate(b, b.TempDir(), n)
			defer s.Close()
			paths := make([]string, n)
			for i, k := range keys {
				paths[i] = filestore.EntryPath(s, k)
			}
			const stride = 7919
			var get, raw time.Duration
			b.ResetTimer()
			for i := range b.N {
				j := (i * stride) % n
				t0 := time.Now()
				if i%2 == 0 { // alternate the order, so neither side always goes first
					if _, err := s.Get(ctx, keys[j]); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					rawRead(b, paths[j])
					t2 := time.Now()
					get, raw = get+t1.Sub(t0), raw+t2.Sub(t1)
				} else {
					rawRead(b, paths[j])
					t1 := time.Now()
					if _, err := s.Get(ctx, keys[j]); err != nil {
						b.Fatal(err)
					}
					t2 := time.Now()
					raw, get = raw+t1.Sub(t0), get+t2.Sub(t1)
				}
			}
			b.ReportMetric(float64(get.Nanoseconds())/float64(b.N), "get-ns/op")
			b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(get)/float64(raw), "get/raw")
		})
	}
}

func rawRead(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadAll(f); err != nil {
		b.Fatal(err)
	}
	f.Close()
}
