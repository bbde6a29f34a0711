package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
)

// BenchmarkMissVsRaw alternates a miss of a fresh key through the store and the raw
// prepared SELECT and upsert of a fresh key through the same *sql.DB, timing each, and
// reports both latencies and their ratio (store/raw). The store side is, per
// sub-benchmark:
//
//   - cachier: a call of a cachier.Func that misses (whatever cachier does: lookup,
//     counters, lease, store, release);
//   - miss-cycle: the adapted Store's calls Get (a miss), Acquire, Set, Release;
//   - miss-path: store.MissPath's ReadOrAcquire and WriteAndRelease with one counter,
//     the driver's GetAndCreate and SetAndDelete underneath.
//
// Run it with go test -run '^$' -bench MissVsRaw ./store/sqlstore/.
func BenchmarkMissVsRaw(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			db, d, table, _ := benchStore(b, e)
			s := store.Adapt(d)
			sel := rawSelect(b, db, e, table)
			ups := rawUpsert(b, db, e, table)
			ctx := context.Background()
			f, err := cachier.Wrap(func(_ context.Context, i int) ([]byte, error) { return benchValue, nil },
				cachier.Name("bench/miss"), cachier.WithStore(s))
			if err != nil {
				b.Fatal(err)
			}
			owner := store.Owner{Host: "bench", PID: 1, Token: "t"}
			entry := func() store.Entry { return store.Entry{Value: benchValue, StoredAt: time.Now()} }
			i := 0
			ops := []struct {
				name string
				run  func(k store.Key) error
			}{
				{"cachier", func(store.Key) error { i++; _, err := f.Call(ctx, i); return err }},
				{"miss-cycle", func(k store.Key) error {
					if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("Get: %v", err)
					}
					l, err := s.Acquire(ctx, k, owner, time.Minute)
					if err != nil {
						return err
					}
					if err := s.Set(ctx, k, entry()); err != nil {
						return err
					}
					return s.Release(ctx, l)
				}},
				{"miss-path", func(k store.Key) error {
					mp := s.(store.MissPath)
					c, err := mp.ReadOrAcquire(ctx, k, []string{"bench"}, owner, time.Minute)
					if err != nil {
						return err
					}
					if !errors.Is(c.Err, store.ErrNotFound) || c.LeaseErr != nil || c.VersionsErr != nil {
						return fmt.Errorf("ReadOrAcquire: %v, %v, %v", c.Err, c.LeaseErr, c.VersionsErr)
					}
					_, err = mp.WriteAndRelease(ctx, k, entry(), c.Lease, []string{"bench"})
					return err
				}},
			}
			for _, op := range ops {
				b.Run(op.name, func(b *testing.B) {
					var storeT, rawT time.Duration
					for b.Loop() {
						k := store.Key{Namespace: "bench/" + op.name, ID: randHex(8)}
						t0 := time.Now()
						if err := op.run(k); err != nil {
							b.Fatal(err)
						}
						t1 := time.Now()
						if err := rawMiss(ctx, sel, ups); err != nil {
							b.Fatal(err)
						}
						t2 := time.Now()
						storeT += t1.Sub(t0)
						rawT += t2.Sub(t1)
					}
					b.ReportMetric(float64(storeT.Nanoseconds())/float64(b.N), "store-ns/op")
					b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/op")
					b.ReportMetric(float64(storeT)/float64(rawT), "store/raw")
				})
			}
		})
	}
}

// rawMiss is the baseline of a miss: the prepared SELECT of a fresh key, then its
// upsert.
func rawMiss(ctx context.Context, sel, ups *sql.Stmt) error {
	id := "raw" + randHex(8)
	if err := rawGet(ctx, sel, "bench/raw", id); !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("raw SELECT: %v", err)
	}
	_, err := ups.ExecContext(ctx, "bench/raw", id, time.Now().UnixMicro(), benchValue)
	return err
}

// rawUpsert prepares the upsert of one row of table, as the store's Set writes it
// (without PostgreSQL's notification).
func rawUpsert(b *testing.B, db *sql.DB, e engine, table string) *sql.Stmt {
	b.Helper()
	q := "INSERT INTO " + table + " (namespace, id, stored_at, value) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, id) DO UPDATE SET stored_at = excluded.stored_at, value = excluded.value"
	switch e.dialect {
	case sqlstore.Postgres:
		q = "INSERT INTO " + table + " (namespace, id, stored_at, value) VALUES ($1, $2, $3, $4) ON CONFLICT (namespace, id) DO UPDATE SET stored_at = excluded.stored_at, value = excluded.value"
	case sqlstore.MySQL:
		q = "INSERT INTO " + table + " (namespace, id, stored_at, value) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE stored_at = VALUES(stored_at), value = VALUES(value)"
	}
	st, err := db.PrepareContext(context.Background(), q)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkHitClaimVsGet alternates, on one stored entry, the adapted Store's Get and
// store.Claimer.ReadOrClaim with one counter (cachier's first read of a call on a
// store that claims natively), and reports both latencies and their ratio
// (claim/get): what a hit costs more when the first read can also take the lease.
//
// Run it with go test -run '^$' -bench HitClaimVsGet ./store/sqlstore/.
func BenchmarkHitClaimVsGet(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			_, d, _, _ := benchStore(b, e)
			s := store.Adapt(d)
			ctx := context.Background()
			k := store.Key{Namespace: "bench/hit", ID: randHex(8)}
			if err := s.Set(ctx, k, store.Entry{Value: benchValue, StoredAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
			owner := store.Owner{Host: "bench", PID: 1, Token: "t"}
			var getT, claimT time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := s.Get(ctx, k); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				c, err := s.(store.Claimer).ReadOrClaim(ctx, k, []string{"bench"}, owner, time.Minute)
				if err != nil || c.Err != nil || !errors.Is(c.LeaseErr, store.ErrNotClaimed) {
					b.Fatalf("ReadOrClaim of a hit: %v, %v, %v", err, c.Err, c.LeaseErr)
				}
				t2 := time.Now()
				getT += t1.Sub(t0)
				claimT += t2.Sub(t1)
			}
			b.ReportMetric(float64(getT.Nanoseconds())/float64(b.N), "get-ns/op")
			b.ReportMetric(float64(claimT.Nanoseconds())/float64(b.N), "claim-ns/op")
			b.ReportMetric(float64(claimT)/float64(getT), "claim/get")
		})
	}
}
