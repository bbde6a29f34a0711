package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/cachier-go/cachier/store"
)

// mapDriver is the smallest Driver: a map under a mutex.
type mapDriver struct {
	mu sync.Mutex
	m  map[store.Key]store.Entry
}

func (d *mapDriver) Get(_ context.Context, k store.Key) (store.Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[k]
	if !ok {
		return store.Entry{}, store.ErrNotFound
	}
	return e, nil
}

func (d *mapDriver) Set(_ context.Context, k store.Key, e store.Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[k] = e
	return nil
}

func (d *mapDriver) Delete(_ context.Context, k store.Key) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, k)
	return nil
}

func (d *mapDriver) Close() error { return nil }

func TestGetManySetManyFallback(t *testing.T) {
	ctx := context.Background()
	d := &mapDriver{m: map[store.Key]store.Entry{}}
	ks := []store.Key{{Namespace: "ns", ID: "a"}, {Namespace: "ns", ID: "b"}, {Namespace: "ns", ID: "c"}}
	errs, err := store.SetMany(ctx, d, ks[:2], []store.Entry{{Value: []byte("A")}, {Value: []byte("B")}})
	if err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("SetMany = %v, %v", errs, err)
	}
	es, errs, err := store.GetMany(ctx, d, ks)
	if err != nil {
		t.Fatal(err)
	}
	if string(es[0].Value) != "A" || string(es[1].Value) != "B" || errs[0] != nil || errs[1] != nil {
		t.Fatalf("GetMany found %q %q (%v %v), want A B", es[0].Value, es[1].Value, errs[0], errs[1])
	}
	if !errors.Is(errs[2], store.ErrNotFound) {
		t.Fatalf("GetMany of a missing key: err %v, want ErrNotFound", errs[2])
	}
}
