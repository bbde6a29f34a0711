package sqlstore_test

import (
	"context"
	"maps"
	"sync"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgxpipe"
)

// counting is a *sqlstore.Store (every capability of it promoted) that counts the
// calls of the portable layer to its key-level methods.
type counting struct {
	*sqlstore.Store
	mu sync.Mutex
	n  map[string]int
}

func (c *counting) inc(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[op]++
}

func (c *counting) calls() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

func (c *counting) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	c.inc("Get")
	return c.Store.Get(ctx, k)
}

func (c *counting) Set(ctx context.Context, k store.Key, e store.Entry) error {
	c.inc("Set")
	return c.Store.Set(ctx, k, e)
}

func (c *counting) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	c.inc("Swap")
	return c.Store.Swap(ctx, k, old, next)
}

func (c *counting) GetAndCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	c.inc("GetAndCreate")
	return c.Store.GetAndCreate(ctx, k, also, rk, rec)
}

func (c *counting) GetOrCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	c.inc("GetOrCreate")
	return c.Store.GetOrCreate(ctx, k, also, rk, rec)
}

func (c *counting) SetAndDelete(ctx context.Context, k store.Key, e store.Entry, rk store.Key, old []byte, also []store.Key) (bool, [][]byte, error) {
	c.inc("SetAndDelete")
	return c.Store.SetAndDelete(ctx, k, e, rk, old, also)
}

func (c *counting) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	c.inc("GetMany")
	return c.Store.GetMany(ctx, ks)
}

func (c *counting) SwapMany(ctx context.Context, ks []store.Key, olds [][]byte, nexts []*store.Entry) ([]bool, error) {
	c.inc("SwapMany")
	return c.Store.SwapMany(ctx, ks, olds, nexts)
}

func (c *counting) SetAndDeleteMany(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key) ([]bool, []error, [][]byte, error) {
	c.inc("SetAndDeleteMany")
	return c.Store.SetAndDeleteMany(ctx, ks, es, rks, olds, also)
}

// A cold batch of 100 keys is 4 calls of the driver on every engine, whatever the
// number of keys: the lookup (GetMany), the 100 leases (SwapMany), the re-check with
// the epoch (GetMany), the writes with the releases (SetAndDeleteMany); none of a
// single key (it was 100 lease statements and more, one at a time).
func TestColdBatchCalls(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			db := e.open(t)
			s, err := sqlstore.New(db, &sqlstore.Options{Table: freshTable(t, db, e.dialect), Pipeline: pgxpipe.Pipeliner{}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			c := &counting{Store: s, n: map[string]int{}}
			fn := func(_ context.Context, args []int) (map[int][]byte, error) {
				m := make(map[int][]byte, len(args))
				for _, a := range args {
					m[a] = benchValue
				}
				return m, nil
			}
			bt, err := cachier.WrapBatch(fn, cachier.Name("batch/calls"), cachier.WithStore(store.Adapt(c)))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			args := make([]int, 100)
			for i := range args {
				args[i] = i
			}
			if _, err := bt.Call(ctx, args[:1]); err != nil { // the namespace's epoch and the like
				t.Fatal(err)
			}
			c.calls()
			m, err := bt.Call(ctx, args[1:])
			if err != nil || len(m) != len(args)-1 {
				t.Fatalf("Call = %d results, %v", len(m), err)
			}
			want := map[string]int{"GetMany": 2, "SwapMany": 1, "SetAndDeleteMany": 1}
			if got := c.calls(); !maps.Equal(got, want) {
				t.Errorf("a cold batch of %d called the driver %v times, want %v", len(args)-1, got, want)
			}
		})
	}
}
