package store_test

import (
	"context"
	"errors"
	"iter"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// listingOnly is a driver with listing but no ExpiryCleaner, so that cleanup takes the
// portable layer's walk.
type listingOnly struct{ m *memstore.Store }

func (l listingOnly) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	return l.m.Get(ctx, k)
}
func (l listingOnly) Set(ctx context.Context, k store.Key, e store.Entry) error {
	return l.m.Set(ctx, k, e)
}
func (l listingOnly) Delete(ctx context.Context, k store.Key) error { return l.m.Delete(ctx, k) }
func (l listingOnly) Close() error                                  { return l.m.Close() }
func (l listingOnly) Entries(ctx context.Context, ns string) iter.Seq2[store.Info, error] {
	return l.m.Entries(ctx, ns)
}
func (l listingOnly) Namespaces(ctx context.Context) ([]string, error) { return l.m.Namespaces(ctx) }
func (l listingOnly) Clear(ctx context.Context, ns string) error       { return l.m.Clear(ctx, ns) }
func (l listingOnly) DeleteBefore(ctx context.Context, ns string, t time.Time) (int, error) {
	return l.m.DeleteBefore(ctx, ns, t)
}

// The portable layer makes a read past ExpiresAt a miss on every read path, by its
// clock, hides expired entries from listing and removes them at cleanup, whether the
// driver cleans natively (memstore) or not.
func TestPortableLayerExpires(t *testing.T) {
	for name, d := range map[string]func() store.Driver{
		"native cleaner": func() store.Driver { return memstore.New(nil) },
		"listing walk":   func() store.Driver { return listingOnly{memstore.New(nil)} },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			start := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
			clk := clock.NewFake(start)
			s := store.Adapt(d(), store.WithClock(clk))
			defer s.Close()
			k := store.Key{Namespace: "ns", ID: "k"}
			keep := store.Key{Namespace: "ns", ID: "keep"}
			if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: start, ExpiresAt: start.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			if err := s.Set(ctx, keep, store.Entry{Value: []byte("v"), StoredAt: start}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Minute - time.Millisecond)
			if _, err := s.Get(ctx, k); err != nil {
				t.Fatalf("before expiry: %v", err)
			}
			clk.Advance(time.Millisecond)
			if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get at expiry: %v, want ErrNotFound", err)
			}
			if ls, ok := s.(store.LiveStore); ok {
				if _, _, err := ls.GetLive(ctx, k); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("GetLive at expiry: %v, want ErrNotFound", err)
				}
			}
			_, errs, err := s.(store.Batcher).GetMany(ctx, []store.Key{k, keep})
			if err != nil || !errors.Is(errs[0], store.ErrNotFound) || errs[1] != nil {
				t.Fatalf("GetMany at expiry: %v, %v", errs, err)
			}
			if _, _, err := s.(store.VersionedGetter).GetVersioned(ctx, k, []string{"c"}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetVersioned at expiry: %v, want ErrNotFound", err)
			}
			for info, err := range s.Entries(ctx, "ns") {
				if err != nil || info.Key == k {
					t.Fatalf("Entries lists %v, %v after its expiry", info.Key, err)
				}
			}
			n, err := s.DeleteBefore(ctx, "ns", start.Add(-time.Hour))
			if err != nil || n != 1 {
				t.Fatalf("DeleteBefore = %d, %v; want the expired entry removed", n, err)
			}
			if _, err := store.Unwrap(s).Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the driver still holds the expired entry after cleanup: %v", err)
			}
			if _, err := s.Get(ctx, keep); err != nil {
				t.Fatalf("cleanup removed an entry that never expires: %v", err)
			}
		})
	}
}
