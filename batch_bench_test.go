package cachier_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// The batch benchmarks: one call for 100 arguments, all cached ("warm"), 90 cached
// and 10 new ("warm90"), or 100 new ("cold"), through WrapBatch; the same arguments
// through 100 single calls of a Func sharing the entries ("single100", "-warm90", "-cold"); and, on
// Redis, one MGET of the 100 records the warm batch reads ("mget"), the floor of
// a warm batch, measured in the same run so that ratios can be read off. They are
// the root-package twins of bench/'s batch sections, for profiling:
//
//	go test -run '^$' -bench Batch -benchmem -cpuprofile cpu.out .

const benchBatchSize = 100

var benchBatchNew atomic.Int64 // arguments never asked for before

func benchBatchArgs(warm int) []int {
	args := make([]int, 0, benchBatchSize)
	for i := range warm {
		args = append(args, i)
	}
	for len(args) < benchBatchSize {
		args = append(args, int(benchBatchNew.Add(1))+1_000_000_000)
	}
	return args
}

var benchPayload = bytes.Repeat([]byte("x"), 256)

func BenchmarkBatchMemory(b *testing.B) {
	batchFn := func(_ context.Context, args []int) (map[int]Report, error) {
		m := make(map[int]Report, len(args))
		for _, a := range args {
			m[a], _ = benchFn(context.Background(), a)
		}
		return m, nil
	}
	benchBatch(b, store.Adapt(memstore.New(nil)), batchFn, benchFn, nil)
}

func BenchmarkBatchRedis(b *testing.B) {
	prefix := "bench-batch-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	st, c := redisStore(b, prefix, nil)
	batchFn := func(_ context.Context, args []int) (map[int][]byte, error) {
		m := make(map[int][]byte, len(args))
		for _, a := range args {
			m[a] = benchPayload
		}
		return m, nil
	}
	one := func(context.Context, int) ([]byte, error) { return benchPayload, nil }
	ps := store.Adapt(st)
	var storeKeys []store.Key
	benchBatch(b, ps, batchFn, one, func(b testing.TB, bt *cachier.Batch[int, []byte]) func() {
		// The MGET reads the very records the batch reads: the same key names (their
		// length is part of the cost) holding the same bytes.
		ctx := context.Background()
		for i := range benchBatchSize {
			k, err := bt.Key(i)
			if err != nil {
				b.Fatal(err)
			}
			storeKeys = append(storeKeys, k)
		}
		var keys []string
		iter := c.Scan(ctx, 0, prefix+":{*}:v", 1000).Iterator()
		for iter.Next(ctx) {
			if name := iter.Val(); !strings.Contains(name, "{%01") { // not a counter
				keys = append(keys, name)
			}
		}
		if err := iter.Err(); err != nil || len(keys) != benchBatchSize {
			b.Fatalf("found %d entries of the batch, want %d: %v", len(keys), benchBatchSize, err)
		}
		return func() {
			vs, err := c.MGet(ctx, keys...).Result()
			if err != nil || len(vs) != benchBatchSize {
				b.Fatalf("MGET: %d values, %v", len(vs), err)
			}
		}
	}, namedOp{"storeGetMany", func() {
		// The store's own batched read of the same entries, without cachier: what
		// the store layer adds to the MGET (key building, record decoding).
		_, errs, err := store.GetMany(context.Background(), ps, storeKeys)
		if err != nil || errs[0] != nil {
			b.Fatalf("GetMany: %v %v", err, errs[0])
		}
	}})
}

// namedOp is one more operation for benchBatch to time against the MGET.
type namedOp struct {
	name string
	op   func()
}

// benchBatch runs the batch benchmarks on st. With mget (which prepares one raw MGET
// of the same 100 entries), every iteration also times one MGET, right after the
// operation, and the benchmark reports the operation's time as a multiple of it
// ("x-mget"): on a busy machine the ratio of neighbours is steadier than either time.
func benchBatch[R any](b *testing.B, st store.Store, batchFn func(context.Context, []int) (map[int]R, error), one func(context.Context, int) (R, error), mget func(testing.TB, *cachier.Batch[int, R]) func(), more ...namedOp) {
	name := "bench/batch/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	bt, err := cachier.WrapBatch(batchFn, cachier.Name(name), cachier.WithStore(st))
	if err != nil {
		b.Fatal(err)
	}
	f, err := cachier.Wrap(one, cachier.Name(name), cachier.WithStore(st))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := bt.Call(ctx, benchBatchArgs(benchBatchSize)); err != nil {
		b.Fatal(err)
	}
	var raw func()
	if mget != nil {
		raw = mget(b, bt)
	}
	run := func(b *testing.B, warm int, op func(args []int)) {
		b.ReportAllocs()
		var opTime, rawTime time.Duration
		for b.Loop() {
			b.StopTimer()
			args := benchBatchArgs(warm)
			b.StartTimer()
			t0 := time.Now()
			op(args)
			opTime += time.Since(t0)
			if raw != nil {
				b.StopTimer()
				t1 := time.Now()
				raw()
				rawTime += time.Since(t1)
				b.StartTimer()
			}
		}
		if raw != nil && rawTime > 0 {
			b.ReportMetric(float64(rawTime.Nanoseconds())/float64(b.N), "mget-ns/op")
			b.ReportMetric(float64(opTime)/float64(rawTime), "x-mget")
		}
	}
	for _, c := range []struct {
		name string
		warm int
	}{{"warm", benchBatchSize}, {"warm90", 90}, {"cold", 0}} {
		b.Run(c.name, func(b *testing.B) {
			run(b, c.warm, func(args []int) {
				m, err := bt.Call(ctx, args)
				if err != nil || len(m) != benchBatchSize {
					b.Fatalf("%d results, %v", len(m), err)
				}
			})
		})
	}
	for _, c := range []struct {
		name string
		warm int
	}{{"single100", benchBatchSize}, {"single100-warm90", 90}, {"single100-cold", 0}} {
		b.Run(c.name, func(b *testing.B) {
			run(b, c.warm, func(args []int) {
				for _, a := range args {
					if _, err := f.Call(ctx, a); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
	if raw != nil {
		b.Run("mget", func(b *testing.B) {
			run(b, benchBatchSize, func([]int) { raw() })
		})
	}
	for _, m := range more {
		b.Run(m.name, func(b *testing.B) { run(b, benchBatchSize, func([]int) { m.op() }) })
	}
	// The same batch with the local tier: warm keys cost no store read.
	lt, err := cachier.WrapBatch(batchFn, cachier.Name(name+"/tier"), cachier.WithStore(st), cachier.LocalTier(10_000, 0))
	if err != nil {
		b.Fatal(err)
	}
	warmArgs := benchBatchArgs(benchBatchSize)
	for range 3 { // computed; the tier's first reconcile drops what came before it; kept
		if _, err := lt.Call(ctx, warmArgs); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("warm-localtier", func(b *testing.B) {
		run(b, benchBatchSize, func(args []int) {
			m, err := lt.Call(ctx, args)
			if err != nil || len(m) != benchBatchSize {
				b.Fatalf("%d results, %v", len(m), err)
			}
		})
	})
}
