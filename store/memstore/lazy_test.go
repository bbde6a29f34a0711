package memstore_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// countingEncoder seals a string value as its bytes and counts its calls.
type countingEncoder struct {
	calls atomic.Int64
	fail  error
}

func (c *countingEncoder) Encode(v any) ([]byte, error) {
	c.calls.Add(1)
	if c.fail != nil {
		return nil, c.fail
	}
	return []byte(v.(string)), nil
}

type lazyDriver interface {
	store.LazyLiveStore
	Get(context.Context, store.Key) (store.Entry, error)
}

// SetLazy keeps the live value without bytes: GetLive returns it and encodes nothing,
// the first Get makes the bytes (once, for every later Get), and until then and after
// the entry counts as the size it was given, in Bytes, Entries and the byte bound.
func TestSetLazy(t *testing.T) {
	ctx := context.Background()
	for _, adapted := range []bool{false, true} {
		s := memstore.New(&memstore.Options{MaxBytes: 100})
		var d lazyDriver = s
		if adapted {
			d = store.Adapt(s).(lazyDriver) // the portable layer forwards it
		}
		enc := &countingEncoder{}
		k := store.Key{Namespace: "ns", ID: "a"}
		at := time.Unix(1000, 0)
		if err := d.SetLazy(ctx, k, store.Entry{StoredAt: at}, "hello", 40, enc); err != nil {
			t.Fatal(err)
		}
		e, v, err := d.GetLive(ctx, k)
		if err != nil || v != "hello" || len(e.Value) != 0 || !e.StoredAt.Equal(at) || enc.calls.Load() != 0 {
			t.Fatalf("GetLive: %+v, %v, %v, %d encodings; want the live value, no bytes, none made", e, v, err, enc.calls.Load())
		}
		if s.Bytes() != 40 {
			t.Fatalf("Bytes %d, want the estimate 40", s.Bytes())
		}
		for _, info := range collect(t, s, "ns") {
			if info.Size != 40 {
				t.Fatalf("Entries size %d, want the estimate 40", info.Size)
			}
		}
		for range 2 {
			e, err := d.Get(ctx, k)
			if err != nil || string(e.Value) != "hello" || !e.StoredAt.Equal(at) {
				t.Fatalf("Get: %q, %v", e.Value, err)
			}
		}
		if enc.calls.Load() != 1 {
			t.Fatalf("%d encodings for two Gets, want 1", enc.calls.Load())
		}
		// The estimate is what the bound counts: a second entry of 70 evicts the first.
		if err := d.SetLazy(ctx, store.Key{Namespace: "ns", ID: "b"}, store.Entry{StoredAt: at}, "x", 70, enc); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Get(ctx, k); !errors.Is(err, store.ErrNotFound) || s.Bytes() != 70 {
			t.Fatalf("after a second entry over the bound: %v, %d bytes; want the first evicted", err, s.Bytes())
		}
		if err := d.SetLazy(ctx, store.Key{Namespace: "ns", ID: "c"}, store.Entry{}, "y", 101, enc); !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("an estimate over MaxBytes: %v, want ErrTooLarge", err)
		}
	}
}

// A value whose bytes cannot be made reads as a corrupt entry as bytes; GetLive still
// serves it.
func TestSetLazyEncodeFails(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	k := store.Key{Namespace: "ns", ID: "a"}
	if err := s.SetLazy(ctx, k, store.Entry{}, "v", 1, &countingEncoder{fail: errors.New("no")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Get: %v, want ErrCorrupt", err)
	}
	if _, v, err := s.GetLive(ctx, k); v != "v" || err != nil {
		t.Fatalf("GetLive: %v, %v", v, err)
	}
}

func collect(t *testing.T, s *memstore.Store, ns string) []store.Info {
	t.Helper()
	var out []store.Info
	for info, err := range s.Entries(context.Background(), ns) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, info)
	}
	return out
}
