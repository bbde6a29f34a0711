package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// BenchmarkGetVsRaw alternates an operation through the adapted store and go-redis's
// raw commands on a record of the same size, in one loop, so that both see the same
// machine load; it reports each one's mean time and their ratio (store/raw).
//
//   - hit, miss: Get against a raw GET of the same record (of a missing key).
//   - hit-claim: the hit as cachier's first read (store.Claimer.ReadOrClaim with one
//     counter) against a raw GET.
//   - miss-cycle: what a miss costs through the Store's calls (Get that misses,
//     Acquire, Set, Release) against a raw GET and SET.
//   - miss-path: the same miss through store.MissPath (ReadOrAcquire, then
//     WriteAndRelease), the two calls cachier makes for a miss.
//   - miss-scripts: the same miss as the two scripts of store.ReadOrAcquirer and
//     store.WriteAndReleaser (GetAndCreate, SetAndDelete) against a raw GET and SET.
//
// Run it with go test -run '^$' -bench GetVsRaw ./store/redisstore/.
func BenchmarkGetVsRaw(b *testing.B) {
	c := singleClient(b)
	d, err := New(c, nil)
	if err != nil {
		b.Fatal(err)
	}
	s := store.Adapt(d)
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	hit, miss := storetest.BenchEntry(b, s)
	raw := func(k store.Key) string { return base(d).keys.name(k) }
	rawMiss := "cachier-bench-raw:" + raw(miss)
	value := make([]byte, 256)
	entry := func() store.Entry { return store.Entry{Value: value, StoredAt: time.Now()} }
	owner := store.Owner{Host: "bench", PID: 1, Token: "bench"}

	type op struct {
		name       string
		store, raw func() error
		reset      func() // untimed, after each iteration
	}
	ops := []op{
		{name: "hit",
			store: func() error { _, err := s.Get(ctx, hit); return err },
			raw:   func() error { return c.Get(ctx, raw(hit)).Err() }},
		{name: "hit-claim", // cachier's first read of a hit (store.Claimer.ReadOrClaim), with the epoch counter
			store: func() error {
				c, err := s.(store.Claimer).ReadOrClaim(ctx, hit, []string{"bench"}, owner, time.Minute)
				if err == nil && (c.Err != nil || !errors.Is(c.LeaseErr, store.ErrNotClaimed)) {
					err = fmt.Errorf("ReadOrClaim of a hit: %v, %v", c.Err, c.LeaseErr)
				}
				return err
			},
			raw: func() error { return c.Get(ctx, raw(hit)).Err() }},
		{name: "miss",
			store: func() error { return wantMiss(s.Get(ctx, miss)) },
			raw:   func() error { return wantNil(c.Get(ctx, rawMiss).Err()) }},
		{name: "miss-cycle",
			store: func() error {
				if err := wantMiss(s.Get(ctx, miss)); err != nil {
					return err
				}
				l, err := s.Acquire(ctx, miss, owner, time.Minute)
				if err != nil {
					return err
				}
				if err := s.Set(ctx, miss, entry()); err != nil {
					return err
				}
				return s.Release(ctx, l)
			},
			raw: rawMissCycle(ctx, c, rawMiss, value),
			reset: func() {
				_ = s.Delete(ctx, miss)
				_ = c.Del(ctx, rawMiss).Err()
			}},
	}
	if mp, ok := s.(store.MissPath); ok {
		ops = append(ops, op{name: "miss-path",
			store: func() error {
				c, err := mp.ReadOrAcquire(ctx, miss, nil, owner, time.Minute)
				if err != nil {
					return err
				}
				if err := errors.Join(wantMiss(c.Entry, c.Err), c.LeaseErr); err != nil {
					return err
				}
				_, err = mp.WriteAndRelease(ctx, miss, entry(), c.Lease, nil)
				return err
			},
			raw: rawMissCycle(ctx, c, rawMiss, value),
			reset: func() {
				_ = s.Delete(ctx, miss)
				_ = c.Del(ctx, rawMiss).Err()
			}})
	}
	if sd, ok := d.(*Store); ok {
		lease := store.Key{Namespace: store.InternalPrefix + miss.Namespace, ID: miss.ID}
		rec := []byte("a lease record of about the size of the portable layer's")
		ops = append(ops, op{name: "miss-scripts",
			store: func() error {
				res, err := sd.GetAndCreate(ctx, miss, nil, lease, store.Entry{Value: rec, StoredAt: time.Now()})
				if err != nil {
					return err
				}
				if err := wantMiss(res.Entry, res.GetErr); err != nil || !res.Created {
					return errors.Join(err, errors.New("lease not created"))
				}
				deleted, _, err := sd.SetAndDelete(ctx, miss, entry(), lease, rec, nil)
				if err == nil && !deleted {
					err = errors.New("lease not deleted")
				}
				return err
			},
			raw: rawMissCycle(ctx, c, rawMiss, value),
			reset: func() {
				_ = s.Delete(ctx, miss)
				_ = c.Del(ctx, rawMiss).Err()
			}})
	}
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			var storeT, rawT time.Duration
			for b.Loop() {
				t0 := time.Now()
				err := o.store()
				t1 := time.Now()
				rerr := o.raw()
				t2 := time.Now()
				if err := errors.Join(err, rerr); err != nil {
					b.Fatal(err)
				}
				if o.reset != nil {
					o.reset()
				}
				storeT += t1.Sub(t0)
				rawT += t2.Sub(t1)
			}
			b.ReportMetric(float64(storeT.Nanoseconds())/float64(b.N), "store-ns/op")
			b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(storeT)/float64(rawT), "store/raw")
		})
	}
}

// rawMissCycle is the raw client's miss: a GET that finds nothing, then a SET.
func rawMissCycle(ctx context.Context, c *redis.Client, key string, value []byte) func() error {
	return func() error {
		if err := wantNil(c.Get(ctx, key).Err()); err != nil {
			return err
		}
		return c.Set(ctx, key, value, 0).Err()
	}
}

func wantMiss(_ store.Entry, err error) error {
	if !errors.Is(err, store.ErrNotFound) {
		return errors.Join(errors.New("want a miss"), err)
	}
	return nil
}

func wantNil(err error) error {
	if !errors.Is(err, redis.Nil) {
		return errors.Join(errors.New("want redis.Nil"), err)
	}
	return nil
}

// BenchmarkVersioned is a hit on a tagged entry: Get, GetVersioned with 3 counters
// (the entry and the counter records in one MGET), and Get then Versions; see
// storetest.BenchmarkVersioned.
func BenchmarkVersioned(b *testing.B) {
	d, err := New(singleClient(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	storetest.BenchmarkVersioned(b, d)
}

// benchBatchKeys are 100 keys shaped like cachier's: one namespace and a hex digest
// as the ID, so that neither needs escaping.
func benchBatchKeys() []store.Key {
	ks := make([]store.Key, 100)
	for i := range ks {
		ks[i] = store.Key{Namespace: "bench/batch/getmany", ID: fmt.Sprintf("%064x", uint64(i)*0x9e3779b97f4a7c15)}
	}
	return ks
}

// BenchmarkGetMany alternates a warm batch of 100 entries through the driver's
// GetMany with one raw MGET of the same record names, like BenchmarkGetVsRaw, and
// reports each one's mean time and their ratio (store/raw). Run it with
// go test -run '^$' -bench GetMany -benchmem ./store/redisstore/.
func BenchmarkGetMany(b *testing.B) {
	c := singleClient(b)
	d, err := New(c, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	ctx := context.Background()
	ks := benchBatchKeys()
	names := make([]string, len(ks))
	es := make([]store.Entry, len(ks))
	for i, k := range ks {
		names[i] = base(d).keys.name(k)
		es[i] = store.Entry{Value: make([]byte, 256), StoredAt: time.Now()}
	}
	if _, err := d.(store.Batcher).SetMany(ctx, ks, es); err != nil {
		b.Fatal(err)
	}
	bt := d.(store.Batcher)
	b.ReportAllocs()
	var storeT, rawT time.Duration
	for b.Loop() {
		t0 := time.Now()
		_, errs, err := bt.GetMany(ctx, ks)
		t1 := time.Now()
		if err != nil || errs[len(errs)-1] != nil {
			b.Fatal(err, errs[len(errs)-1])
		}
		b.StopTimer()
		t2 := time.Now()
		if err := c.MGet(ctx, names...).Err(); err != nil {
			b.Fatal(err)
		}
		rawT += time.Since(t2)
		b.StartTimer()
		storeT += t1.Sub(t0)
	}
	b.ReportMetric(float64(storeT.Nanoseconds())/float64(b.N), "store-ns/op")
	b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(storeT)/float64(rawT), "store/raw")
}

// BenchmarkKeyNames builds the record names of a batch of 100 keys, the CPU GetMany
// spends before its round trip; it needs no server.
func BenchmarkKeyNames(b *testing.B) {
	kr, err := newKeyer("cachier")
	if err != nil {
		b.Fatal(err)
	}
	ks := benchBatchKeys()
	b.ReportAllocs()
	for b.Loop() {
		_ = kr.names(ks)
	}
}
