package sqlstore_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// benchBatchNew numbers the arguments no batch has asked for before.
var benchBatchNew atomic.Int64

// BenchmarkBatchCold times one call of a cachier.Batch for 100 arguments none of which
// is cached, on each engine: the lookup, the leases of the 100 missing keys, their
// re-check, the writes and the releases. The leases are what store.SwapBatcher
// batches.
//
//	go test -run '^$' -bench BatchCold ./store/sqlstore/
func BenchmarkBatchCold(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			_, d, _, _ := benchStore(b, e)
			s := store.Adapt(d)
			fn := func(_ context.Context, args []int) (map[int][]byte, error) {
				m := make(map[int][]byte, len(args))
				for _, a := range args {
					m[a] = benchValue
				}
				return m, nil
			}
			bt, err := cachier.WrapBatch(fn, cachier.Name("bench/batch/"+strconv.FormatInt(time.Now().UnixNano(), 36)), cachier.WithStore(s))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			args := make([]int, 100)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for i := range args {
					args[i] = int(benchBatchNew.Add(1))
				}
				b.StartTimer()
				m, err := bt.Call(ctx, args)
				if err != nil || len(m) != len(args) {
					b.Fatalf("%d results, %v", len(m), err)
				}
			}
		})
	}
}
