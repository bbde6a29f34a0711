package store_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// MapStore is a complete store driver: the four required methods over a map. The
// portable layer (store.Adapt, which cachier.WithStore applies) validates keys and
// contexts, keeps leases in this process and counters in the map.
type MapStore struct {
	mu sync.Mutex
	m  map[store.Key]store.Entry
}

func NewMapStore() *MapStore { return &MapStore{m: map[store.Key]store.Entry{}} }

func (s *MapStore) Get(_ context.Context, k store.Key) (store.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return store.Entry{}, fmt.Errorf("mapstore: %s: %w", k, store.ErrNotFound)
	}
	e.Value = append([]byte(nil), e.Value...) // the caller owns what Get returns
	return e, nil
}

func (s *MapStore) Set(_ context.Context, k store.Key, e store.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = e
	return nil
}

func (s *MapStore) Delete(_ context.Context, k store.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *MapStore) Close() error { return nil }

func square(_ context.Context, n int) (int, error) {
	fmt.Println("computing", n)
	return n * n, nil
}

// A minimal driver works under cachier.Wrap as it is.
func Example_writingAStore() {
	f, err := cachier.Wrap(square, cachier.WithStore(NewMapStore()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		v, _ := f.Call(ctx, 12)
		fmt.Println(v)
	}
	fmt.Println("single flight:", store.Scope(store.Adapt(NewMapStore())))
	// Output:
	// computing 12
	// 144
	// 144
	// single flight: single flight per process only
}

type mapHarness struct{ swap, trip bool }

func (h mapHarness) MakeStore(context.Context, *testing.T) (store.Driver, error) {
	if h.trip {
		return &tripMapStore{swapMapStore{MapStore: NewMapStore()}}, nil
	}
	if h.swap {
		return &swapMapStore{MapStore: NewMapStore()}, nil
	}
	return NewMapStore(), nil
}

func (mapHarness) Close() {}

// swapMapStore adds the atomic primitive that gives leases across users of the map.
type swapMapStore struct{ *MapStore }

func (s *swapMapStore) Swap(_ context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[k]
	if ok != (old != nil) || (ok && string(cur.Value) != string(old)) {
		return false, nil
	}
	if next == nil {
		delete(s.m, k)
	} else {
		s.m[k] = *next
	}
	return true, nil
}

// tripMapStore is the reference for the two calls of a miss: each is one step under
// the map's lock, as a Redis script or an SQL transaction is one round trip. Counters
// are records in the map (it is no Versioner), so the keys of also are read as they
// are.
type tripMapStore struct{ swapMapStore }

func (s *tripMapStore) GetAndCreate(_ context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r store.GetAndCreateResult
	if e, ok := s.m[k]; ok {
		r.Entry = store.Entry{Value: append([]byte(nil), e.Value...), StoredAt: e.StoredAt, ExpiresAt: e.ExpiresAt}
	} else {
		r.GetErr = fmt.Errorf("mapstore: %s: %w", k, store.ErrNotFound)
	}
	r.Also = s.read(also)
	if cur, ok := s.m[rk]; ok {
		r.Cur = append([]byte{}, cur.Value...)
		return r, nil
	}
	s.m[rk] = rec
	r.Cur, r.Created = append([]byte{}, rec.Value...), true
	return r, nil
}

func (s *tripMapStore) SetAndDelete(_ context.Context, k store.Key, e store.Entry, rk store.Key, old []byte, also []store.Key) (bool, [][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = e
	cur, ok := s.m[rk]
	deleted := ok && string(cur.Value) == string(old)
	if deleted {
		delete(s.m, rk)
	}
	return deleted, s.read(also), nil
}

// read returns copies of the values of ks, nil for a missing one. s.mu is held.
func (s *tripMapStore) read(ks []store.Key) [][]byte {
	vals := make([][]byte, len(ks))
	for i, k := range ks {
		if e, ok := s.m[k]; ok {
			vals[i] = append([]byte{}, e.Value...)
		}
	}
	return vals
}

// The required part of storetest passes on the four methods alone, and the lease
// tests pass over Swap as they do over the process-local fallback.
func TestConformanceMinimalDriver(t *testing.T) {
	t.Run("Required", func(t *testing.T) {
		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return mapHarness{} }, storetest.Capabilities{})
	})
	t.Run("Swapper", func(t *testing.T) {
		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return mapHarness{swap: true} }, storetest.Capabilities{})
	})
	t.Run("OneRoundTripMiss", func(t *testing.T) {
		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return mapHarness{trip: true} }, storetest.Capabilities{})
	})
}
