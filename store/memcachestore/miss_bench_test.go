package memcachestore

import (
	"errors"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier/internal/missbench"
	"github.com/cachier-go/cachier/internal/testserver"
)

var benchSeq atomic.Int64

// BenchmarkMissVsRaw alternates a call of a cachier.Func through the store with
// gomemcache's own commands on the same server, timing each, and reports both
// latencies and their ratio (store/raw), from the same run (missbench.Run):
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
	set := func(k string) error { return c.Set(&memcache.Item{Key: "bench:raw:" + k, Value: missbench.Value}) }
	raw := missbench.Raw{
		Set: set,
		Miss: func(k string) error {
			if _, err := c.Get("bench:raw:" + k); !errors.Is(err, memcache.ErrCacheMiss) {
				return errors.New("raw Get of a new key: " + errString(err))
			}
			return set(k)
		},
		Hit: func(k string) error {
			_, err := c.Get("bench:raw:" + k)
			return err
		},
	}
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
			missbench.Run(b, "bench/memcache", d, raw)
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
