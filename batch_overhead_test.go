package cachier_test

import (
	"context"
	"sync"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// overheadDriver is a store shared across processes in name only: a map behind a
// lock, with a batched read that costs one map read per key. A warm batch on it
// measures what cachier adds to a batched read, without a network or a server:
// the part of BenchmarkBatchRedis/warm that is cachier's own.
type overheadDriver struct {
	mu sync.Mutex
	m  map[store.Key]store.Entry
}

func (d *overheadDriver) Get(_ context.Context, k store.Key) (store.Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[k]
	if !ok {
		return store.Entry{}, store.ErrNotFound
	}
	return e, nil
}

func (d *overheadDriver) Set(_ context.Context, k store.Key, e store.Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e.Value = append([]byte(nil), e.Value...)
	d.m[k] = e
	return nil
}

func (d *overheadDriver) Delete(_ context.Context, k store.Key) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, k)
	return nil
}

func (d *overheadDriver) Close() error { return nil }

func (d *overheadDriver) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
	return es, errs, d.GetManyInto(ctx, ks, es, errs)
}

func (d *overheadDriver) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	return store.SetEach(ctx, d, ks, es)
}

func (d *overheadDriver) GetManyInto(_ context.Context, ks []store.Key, es []store.Entry, errs []error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, k := range ks {
		e, ok := d.m[k]
		if !ok {
			es[i], errs[i] = store.Entry{}, store.ErrNotFound
			continue
		}
		es[i], errs[i] = e, nil
	}
	return nil
}

// BenchmarkBatchWarmOverhead is a warm batch of 100 raw []byte results on a store
// whose batched read is a loop of map reads: cachier's own cost per batch.
func BenchmarkBatchWarmOverhead(b *testing.B) {
	d := &overheadDriver{m: map[store.Key]store.Entry{}}
	bt, err := cachier.WrapBatch(func(_ context.Context, args []int) (map[int][]byte, error) {
		m := make(map[int][]byte, len(args))
		for _, a := range args {
			m[a] = benchPayload
		}
		return m, nil
	}, cachier.Name("bench/overhead"), cachier.WithStore(store.Adapt(d)))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	args := make([]int, benchBatchSize)
	for i := range args {
		args[i] = 1000 + i
	}
	if _, err := bt.Call(ctx, args); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m, err := bt.Call(ctx, args)
		if err != nil || len(m) != benchBatchSize {
			b.Fatalf("%d results, %v", len(m), err)
		}
	}
}
