package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
	"github.com/cachier-go/cachier/store/redisstore"
	"github.com/maypok86/otter/v2"
	"github.com/viccon/sturdyc"
)

// Batch sections: 100 arguments per call, all cached, 90% cached (10 new arguments
// per call) and cold (100 new ones), through cachier's WrapBatch, through 100 single
// calls of the same function wrapped with Wrap, through the peers' batch loads
// (in memory: sturdyc's GetOrFetchBatch and otter's BulkGet; on Redis: sturdyc's
// GetOrFetchBatch with its distributed storage over Redis) and, on Redis, one MGET
// of 100 keys holding values of the same size: the floor of any warm batch.

const batchSize = 100

func batchReports(ctx context.Context, ns []int) (map[int]report, error) {
	out := make(map[int]report, len(ns))
	for _, n := range ns {
		out[n], _ = makeReport(ctx, n)
	}
	return out, nil
}

// batchPayloads and payloadOf return the store sections' raw payload: on Redis the
// batch rows measure the store path, not a codec, like the other store sections.
func batchPayloads(_ context.Context, ns []int) (map[int][]byte, error) {
	out := make(map[int][]byte, len(ns))
	for _, n := range ns {
		out[n] = payload
	}
	return out, nil
}

func payloadOf(context.Context, int) ([]byte, error) { return payload, nil }

// batchKey hands out arguments never used before, for the cold part of a batch.
func batchKeys(warm int) []int {
	args := make([]int, 0, batchSize)
	for i := range warm {
		args = append(args, i)
	}
	for len(args) < batchSize {
		args = append(args, int(missKey.Add(1))+2_000_000_000)
	}
	return args
}

// batchIDs returns the arguments as sturdyc's string ids.
func batchIDs(args []int) []string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = strconv.Itoa(a)
	}
	return s
}

type batchImpl struct {
	name    string
	base    bool
	note    string
	minWarm int                                                // rows only for batches with at least this many cached arguments
	get     func(ctx context.Context, args []int) (int, error) // how many results
}

func batchMemorySubjects(t *testing.T) []subject {
	addNote("Batch rows: one call for 100 arguments; \"90% cached\" asks for 90 cached arguments and 10 new ones, \"cold\" for 100 new ones. The batch function returns at once; memory rows cache a small struct, Redis rows the 256-byte payload of the other store sections. On Redis, the MGET row reads the very 100 records the warm batch reads (same key names, same bytes), in one command: the floor of a warm batch.")
	return batchSubjects(t, "batch memory", store.Adapt(memstore.New(nil)), batchReports, makeReport, nil)
}

func batchRedisSubjects(t *testing.T) []subject {
	c := redisClient(t)
	st, err := redisstore.New(c, &redisstore.Options{Prefix: "bench-batch"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	mget := batchImpl{name: "raw MGET", note: "go-redis, the 100 records the warm batch reads (same names, same bytes), one round trip", minWarm: batchSize}
	// cachier with its local tier: cached arguments from this process's memory, as
	// sturdyc answers them, but kept coherent with the store (LocalTier). Its own
	// namespace, so that the WrapBatch row above still reads Redis.
	tiered, err := cachier.WrapBatch(batchPayloads, cachier.Name("bench/batch redis/"+randHex(4)+"/tier"), cachier.WithStore(store.Adapt(st)), cachier.LocalTier(1_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiered.Close(context.Background()) })
	local := batchImpl{name: "cachier WrapBatch with LocalTier", note: "LocalTier(1e6, 0): cached arguments from this process's memory, kept coherent; the others as WrapBatch", minWarm: 90, get: func(ctx context.Context, args []int) (int, error) {
		m, err := tiered.Call(ctx, args)
		return len(m), err
	}}
	// sturdyc over Redis: its memory in front of its distributed storage, the way
	// sturdyc shares results between processes.
	sc := sturdyc.New[[]byte](10_000_000, 16, time.Hour, 10,
		sturdyc.WithDistributedStorage(sturdyRedis{c: c, prefix: "sturdyc-batch:", ttl: time.Hour}))
	keyFn := sc.BatchKeyFn("p")
	fetch := func(_ context.Context, ids []string) (map[string][]byte, error) {
		out := make(map[string][]byte, len(ids))
		for _, id := range ids {
			out[id] = payload
		}
		return out, nil
	}
	sturdy := batchImpl{name: "github.com/viccon/sturdyc", note: "GetOrFetchBatch, WithDistributedStorage over Redis: cached ids from its memory, not kept coherent; the others with one MGET, written back in the background", get: func(ctx context.Context, args []int) (int, error) {
		m, err := sc.GetOrFetchBatch(ctx, batchIDs(args), keyFn, fetch)
		return len(m), err
	}}
	return batchSubjects(t, "batch redis", store.Adapt(st), batchPayloads, payloadOf, func(b *cachier.Batch[int, []byte]) []batchImpl {
		// The MGET reads the very records the warm batch reads, as issue #14 words
		// it ("one MGET of the same keys"): the same key names (their length is part
		// of the cost, on the wire and in the server) holding the same bytes. A
		// record's name is <prefix>:{<namespace>:<id>}:v, with the namespace's space
		// escaped (redisstore's keys.go); each is checked to hold the entry.
		keys := make([]string, batchSize)
		for i := range batchSize {
			k, err := b.Key(i)
			if err != nil {
				t.Fatal(err)
			}
			e, err := st.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			keys[i] = "bench-batch:{" + strings.ReplaceAll(k.Namespace, " ", "%20") + ":" + k.ID + "}:v"
			raw, err := c.Get(ctx, keys[i]).Bytes()
			if err != nil || !bytes.HasSuffix(raw, e.Value) {
				t.Fatalf("record %s does not hold the entry of argument %d: %v", keys[i], i, err)
			}
		}
		mget.get = func(ctx context.Context, _ []int) (int, error) {
			vs, err := c.MGet(ctx, keys...).Result()
			return len(vs), err
		}
		return []batchImpl{local, mget, sturdy}
	})
}

func batchSubjects[R any](t *testing.T, section string, st store.Store, batchFn func(context.Context, []int) (map[int]R, error), singleFn func(context.Context, int) (R, error), raw func(*cachier.Batch[int, R]) []batchImpl) []subject {
	t.Helper()
	ctx := context.Background()
	name := "bench/" + section + "/" + randHex(4)
	b, err := cachier.WrapBatch(batchFn, cachier.Name(name+"/batch"), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	f, err := cachier.Wrap(singleFn, cachier.Name(name+"/single"), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	warm := batchKeys(batchSize)
	if _, err := b.Call(ctx, warm); err != nil {
		t.Fatal(err)
	}
	for _, a := range warm {
		if _, err := f.Call(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	impls := []batchImpl{
		{name: "cachier WrapBatch", base: true, get: func(ctx context.Context, args []int) (int, error) {
			m, err := b.Call(ctx, args)
			return len(m), err
		}},
		{name: "cachier, 100 single calls", note: "Wrap, one Call per argument", get: func(ctx context.Context, args []int) (int, error) {
			for _, a := range args {
				if _, err := f.Call(ctx, a); err != nil {
					return 0, err
				}
			}
			return len(args), nil
		}},
	}
	if raw != nil {
		impls = append(impls, raw(b)...)
	} else {
		sc := sturdyc.New[report](10_000_000, 16, time.Hour, 10)
		keyFn := sc.BatchKeyFn("r")
		fetch := func(ctx context.Context, ids []string) (map[string]report, error) {
			out := make(map[string]report, len(ids))
			for _, id := range ids {
				n, _ := strconv.Atoi(id)
				out[id], _ = makeReport(ctx, n)
			}
			return out, nil
		}
		oc, err := otter.New(&otter.Options[int, report]{})
		if err != nil {
			t.Fatal(err)
		}
		bulk := otter.BulkLoaderFunc[int, report](batchReports)
		impls = append(impls,
			batchImpl{name: "github.com/viccon/sturdyc", note: "GetOrFetchBatch, string ids", get: func(ctx context.Context, args []int) (int, error) {
				m, err := sc.GetOrFetchBatch(ctx, batchIDs(args), keyFn, fetch)
				return len(m), err
			}},
			batchImpl{name: "github.com/maypok86/otter/v2", note: "BulkGet with a BulkLoader", get: func(ctx context.Context, args []int) (int, error) {
				m, err := oc.BulkGet(ctx, args, bulk)
				return len(m), err
			}},
		)
	}
	for _, im := range impls[2:] {
		if _, err := im.get(ctx, warm); err != nil {
			t.Fatal(err)
		}
	}
	var subs []subject
	for _, op := range []struct {
		name string
		warm int
	}{{"batch of 100, all cached", batchSize}, {"batch of 100, 90% cached", 90}, {"batch of 100, cold", 0}} {
		for _, im := range impls {
			if op.warm < im.minWarm {
				continue
			}
			get := im.get
			subs = append(subs, subject{op: op.name, impl: im.name, base: im.base, note: im.note, run: func(tb *testing.B) {
				tb.ReportAllocs()
				for tb.Loop() {
					tb.StopTimer()
					args := batchKeys(op.warm)
					tb.StartTimer()
					n, err := get(ctx, args)
					if err != nil {
						must(tb, "batch", err)
					}
					if n != batchSize {
						must(tb, "batch", fmt.Errorf("%d results, want %d", n, batchSize))
					}
				}
			}})
		}
	}
	return subs
}
