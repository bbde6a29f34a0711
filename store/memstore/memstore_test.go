package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
	"github.com/cachier-go/cachier/store/storetest"
)

type harness struct {
	open func(ctx context.Context) (store.Driver, error)
}

func (h harness) MakeStore(ctx context.Context, _ *testing.T) (store.Driver, error) {
	return h.open(ctx)
}
func (harness) Close() {}

func TestConformance(t *testing.T) {
	t.Run("Unbounded", func(t *testing.T) {
		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness {
			return harness{open: func(context.Context) (store.Driver, error) { return memstore.New(nil), nil }}
		}, storetest.Capabilities{})
	})
	// Bounds far above what the suite stores, so eviction code runs but never evicts.
	t.Run("Bounded", func(t *testing.T) {
		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness {
			return harness{open: func(ctx context.Context) (store.Driver, error) {
				return store.Open(ctx, "mem://?max_entries=100000&max_bytes=256MiB")
			}}
		}, storetest.Capabilities{})
	})
}

func key(id string) store.Key { return store.Key{Namespace: "ns", ID: id} }

func TestBoundsNeverExceeded(t *testing.T) {
	ctx := context.Background()
	const maxEntries, maxBytes = 50, 4000
	s := memstore.New(&memstore.Options{MaxEntries: maxEntries, MaxBytes: maxBytes})
	var violations atomic.Int32
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s.Len() > maxEntries || s.Bytes() > maxBytes {
				violations.Add(1)
			}
		}
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				k := store.Key{Namespace: fmt.Sprint("ns", g%2), ID: fmt.Sprint(i % 97)}
				v := make([]byte, (i*7+g)%300)
				if err := s.Set(ctx, k, store.Entry{Value: v, StoredAt: time.Now()}); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 {
					_, _ = s.Get(ctx, k)
				}
				if i%31 == 0 {
					_ = s.Delete(ctx, k)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	watcher.Wait()
	if n := violations.Load(); n > 0 {
		t.Errorf("bounds exceeded %d times", n)
	}
	if s.Len() > maxEntries || s.Bytes() > maxBytes {
		t.Errorf("after the run: %d entries, %d bytes; bounds %d, %d", s.Len(), s.Bytes(), maxEntries, maxBytes)
	}
	// The counters agree with what is listed.
	var n int
	var size int64
	for _, ns := range []string{"ns0", "ns1"} {
		for info, err := range s.Entries(ctx, ns) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			size += info.Size
		}
	}
	if n != s.Len() || size != s.Bytes() {
		t.Errorf("listed %d entries of %d bytes, counters say %d and %d", n, size, s.Len(), s.Bytes())
	}
}

func TestTooLarge(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(&memstore.Options{MaxBytes: 100})
	err := s.Set(ctx, key("big"), store.Entry{Value: make([]byte, 101)})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Set of 101 bytes into max 100: %v, want ErrTooLarge", err)
	}
	if err := s.Set(ctx, key("fits"), store.Entry{Value: make([]byte, 100)}); err != nil {
		t.Fatalf("Set of exactly max bytes: %v", err)
	}
	// A second full-size value evicts the first.
	if err := s.Set(ctx, key("fits2"), store.Entry{Value: make([]byte, 100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, key("fits")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("first value survived: %v", err)
	}
	// Overwriting a key in a full store replaces it in place, evicting nothing else.
	if err := s.Set(ctx, key("fits2"), store.Entry{Value: make([]byte, 100)}); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 || s.Bytes() != 100 {
		t.Errorf("after overwrite: %d entries, %d bytes; want 1, 100", s.Len(), s.Bytes())
	}
}

// TestClockSecondChance checks the eviction policy: an entry hit since the hand last
// passed survives a sweep that evicts entries that were not.
func TestClockSecondChance(t *testing.T) {
	ctx := context.Background()
	const n = 64
	s := memstore.New(&memstore.Options{MaxEntries: n})
	for i := range n {
		if err := s.Set(ctx, key(fmt.Sprint("old", i)), store.Entry{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	hot := []store.Key{key("old3"), key("old17"), key("old40"), key("old63")}
	for _, k := range hot {
		if _, _, err := s.GetLive(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// Half the capacity in new entries: only unreferenced old ones may go.
	for i := range n / 2 {
		if err := s.Set(ctx, key(fmt.Sprint("new", i)), store.Entry{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		if s.Len() > n {
			t.Fatalf("%d entries, bound %d", s.Len(), n)
		}
	}
	for _, k := range hot {
		if _, err := s.Get(ctx, k); err != nil {
			t.Errorf("hot entry %s was evicted: %v", k, err)
		}
	}
	if s.Len() != n {
		t.Errorf("Len = %d, want %d", s.Len(), n)
	}
	// A full store under a stream of new keys keeps turning over: no livelock, and
	// entries hit on every round survive.
	for i := range 5 * n {
		for _, k := range hot {
			if _, _, err := s.GetLive(ctx, k); err != nil {
				t.Fatalf("round %d: hot entry %s evicted: %v", i, k, err)
			}
		}
		if err := s.Set(ctx, key(fmt.Sprint("stream", i)), store.Entry{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	s := store.Adapt(memstore.New(nil))
	if err := s.Set(ctx, key("k"), store.Entry{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	ch, stop, err := s.(store.Notifier).Watch(ctx, key("k"))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Error("Close did not wake the watcher")
	}
	if _, err := s.Get(ctx, key("k")); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Close: %v, want a closed error", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	good := []struct {
		url        string
		maxEntries int
		maxBytes   int64
	}{
		{"mem://", 0, 0},
		{"mem:", 0, 0},
		{"MEM://", 0, 0},
		{"mem:///", 0, 0},
		{"mem://?max_entries=1000", 1000, 0},
		{"mem://?max_bytes=64MiB", 0, 64 << 20},
		{"mem://?max_entries=1000&max_bytes=64MiB", 1000, 64 << 20},
		{"mem://?max_bytes=1024", 0, 1024},
		{"mem://?max_bytes=10kb", 0, 10_000},
		{"mem://?max_bytes=2GiB", 0, 2 << 30},
		{"mem://?max_bytes=0", 0, memstore.NoBound},
	}
	for _, c := range good {
		u := storetest.MustParseURL(t, c.url)
		opts, err := memstore.ParseURL(u)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.url, err)
			continue
		}
		if opts.MaxEntries != c.maxEntries || opts.MaxBytes != c.maxBytes {
			t.Errorf("ParseURL(%q) = %+v, want max_entries %d max_bytes %d", c.url, opts, c.maxEntries, c.maxBytes)
		}
		s, err := store.Open(ctx, c.url)
		if err != nil {
			t.Errorf("Open(%q): %v", c.url, err)
			continue
		}
		_ = s.Close()
	}
	bad := []struct{ url, mention string }{
		{"mem://?max_entry=5", "max_entries"},
		{"mem://?max_entries=-1", "at least 0"},
		{"mem://?max_entries=ten", "max_entries"},
		{"mem://?max_entries=1&max_entries=2", "once"},
		{"mem://?max_bytes=64XB", "KiB"},
		{"mem://?max_bytes=-5", "max_bytes"},
		{"mem://?max_bytes=99999999999TiB", "too large"},
		{"mem://?max_bytes=1.5GiB", "whole number"},
		{"mem://?max_bytes=", "max_bytes"},
		{"mem://host", "no host"},
		{"mem://user:secret@/", "no host"},
		{"mem:///some/path", "no host"},
		{"mem:opaque", "no host"},
		{"mem://?a=%zz", "query"},
	}
	for _, c := range bad {
		s, err := store.Open(ctx, c.url)
		if !errors.Is(err, store.ErrBadURL) {
			t.Errorf("Open(%q) = %v, %v; want an error matching store.ErrBadURL", c.url, s, err)
			continue
		}
		if !strings.Contains(err.Error(), c.mention) {
			t.Errorf("Open(%q) error %q does not mention %q", c.url, err, c.mention)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error leaks the password: %q", c.url, err)
		}
	}
}

func TestOpenReturnsIndependentStores(t *testing.T) {
	ctx := context.Background()
	a, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Set(ctx, key("k"), store.Entry{Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, key("k")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second store sees the first's entry: %v", err)
	}
}

func FuzzOpenURL(f *testing.F) {
	for _, s := range []string{"mem://", "mem://?max_entries=1000&max_bytes=64MiB", "mem://?max_bytes=1TiB",
		"mem://?max_entries=-1", "mem://x", "mem://?max_bytes=9223372036854775807", "mem://?max_bytes=8EiB",
		"mem://?%", "mem:?max_entries=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ctx := context.Background()
		s, err := store.Open(ctx, raw)
		if err != nil {
			return
		}
		defer s.Close()
		// Whatever opened must work.
		if err := s.Set(ctx, key("k"), store.Entry{Value: []byte("v")}); err != nil && !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("Open(%q): Set: %v", raw, err)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1", "64MiB", "10kb", "1.5GiB", "", "KiB", "9223372036854775807", "9223372036854775808", "8589934592GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := memstore.ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
	})
}

func BenchmarkStore(b *testing.B) {
	s := memstore.New(nil)
	defer s.Close()
	storetest.RunBenchmarks(b, s)
}

// A store is bounded unless told otherwise, and says what its bounds are.
func TestDefaultBoundIsVisible(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		open       func() (*memstore.Store, error)
		maxEntries int
		maxBytes   int64
	}{
		{"New(nil)", func() (*memstore.Store, error) { return memstore.New(nil), nil }, 0, memstore.DefaultMaxBytes},
		{"zero Options", func() (*memstore.Store, error) { return memstore.New(&memstore.Options{}), nil }, 0, memstore.DefaultMaxBytes},
		{"NoBound", func() (*memstore.Store, error) {
			return memstore.New(&memstore.Options{MaxBytes: memstore.NoBound}), nil
		}, 0, 0},
		{"set", func() (*memstore.Store, error) {
			return memstore.New(&memstore.Options{MaxEntries: 5, MaxBytes: 100}), nil
		}, 5, 100},
		{"mem://", func() (*memstore.Store, error) { s, err := store.Open(ctx, "mem://"); return asMem(s), err }, 0, memstore.DefaultMaxBytes},
		{"mem://?max_bytes=0", func() (*memstore.Store, error) { s, err := store.Open(ctx, "mem://?max_bytes=0"); return asMem(s), err }, 0, 0},
	} {
		s, err := c.open()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n, b := s.Limits(); n != c.maxEntries || b != c.maxBytes {
			t.Errorf("%s: Limits() = %d entries, %d bytes; want %d, %d", c.name, n, b, c.maxEntries, c.maxBytes)
		}
	}
	// The default bound is enforced: a value over it is refused.
	s := memstore.New(nil)
	err := s.Set(ctx, key("huge"), store.Entry{Value: make([]byte, memstore.DefaultMaxBytes+1), StoredAt: time.Now()})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("a value over DefaultMaxBytes: %v, want ErrTooLarge", err)
	}
}

func asMem(s store.Driver) *memstore.Store { m, _ := store.Unwrap(s).(*memstore.Store); return m }
