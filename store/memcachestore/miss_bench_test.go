package memcachestore

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

var (
	benchValue = bytes.Repeat([]byte("cachier!"), 32) // bench/'s payload
	benchSeq   atomic.Int64
)

// BenchmarkMissVsRaw alternates a call of a cachier.Func through the store with
// gomemcache's own commands on the same server, timing each, and reports both
// latencies and their ratio (store/raw), from the same run:
//
//   - miss: a call on a new key (look up, take the lease, compute at once, store and
//     release) against a Get that misses and a Set of a new key;
//   - hit: a call of a stored key against a Get of a stored item.
//
// pipelined is the store with Options.Addr (its batches sent as meta commands on its
// own connections); gomemcache is the store over the client alone. Run it with
//
//	go test -run '^$' -bench MissVsRaw -count 5 ./store/memcachestore/
func BenchmarkMissVsRaw(b *testing.B) {
	srv := testserver.Memcached(b)
	c := memcache.New(srv.Addr)
	b.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	for _, mode := range []string{"pipelined", "gomemcache"} {
		b.Run(mode, func(b *testing.B) {
			opts := &Options{Prefix: "bench" + strconv.FormatInt(benchSeq.Add(1), 10)}
			if mode == "pipelined" {
				opts.Addr = srv.Addr
			}
			d, err := New(c, opts)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = d.Close() })
			f, err := cachier.Wrap(func(context.Context, string) ([]byte, error) { return benchValue, nil },
				cachier.Name("bench/memcache"), cachier.WithStore(store.Adapt(d)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Call(ctx, "hot"); err != nil {
				b.Fatal(err)
			}
			if err := c.Set(&memcache.Item{Key: "bench:raw:hot", Value: benchValue}); err != nil {
				b.Fatal(err)
			}
			ops := []struct {
				name       string
				cachier    func() error
				raw        func() error
				wantMisses bool
			}{
				{"miss", func() error {
					_, err := f.Call(ctx, "miss-"+strconv.FormatInt(benchSeq.Add(1), 10))
					return err
				}, func() error {
					k := "bench:raw:miss-" + strconv.FormatInt(benchSeq.Add(1), 10)
					if _, err := c.Get(k); !errors.Is(err, memcache.ErrCacheMiss) {
						return errors.New("raw Get of a new key: " + errString(err))
					}
					return c.Set(&memcache.Item{Key: k, Value: benchValue})
				}, true},
				{"hit", func() error {
					_, err := f.Call(ctx, "hot")
					return err
				}, func() error {
					_, err := c.Get("bench:raw:hot")
					return err
				}, false},
			}
			for _, op := range ops {
				b.Run(op.name, func(b *testing.B) {
					before := f.Stats()
					storetest.Alternate(b, op.cachier, op.raw)
					st := f.Stats().Sub(before)
					if st.StoreErrors != 0 || (st.Misses != 0) != op.wantMisses {
						b.Fatalf("%d store errors, %d misses", st.StoreErrors, st.Misses)
					}
				})
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
