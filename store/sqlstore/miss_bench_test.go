package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/sqlstore"
)

// BenchmarkMissVsRaw alternates a miss through cachier on the store (lookup, lease,
// store the result, give the lease up: whatever the portable layer does) and the raw
// prepared SELECT and upsert of a fresh key through the same *sql.DB, timing each, and
// reports both latencies and their ratio (store/raw).
func BenchmarkMissVsRaw(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			db, s, table, _ := benchStore(b, e)
			sel := rawSelect(b, db, e, table)
			ups := rawUpsert(b, db, e, table)
			f, err := cachier.Wrap(func(_ context.Context, i int) ([]byte, error) { return benchValue, nil },
				cachier.Name("bench/miss"), cachier.WithStore(s))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var storeT, rawT time.Duration
			i := 0
			for b.Loop() {
				i++
				t0 := time.Now()
				if _, err := f.Call(ctx, i); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				id := "raw" + randHex(8)
				if err := rawGet(ctx, sel, "bench/raw", id); err == nil {
					b.Fatal("raw hit")
				}
				if _, err := ups.ExecContext(ctx, "bench/raw", id, time.Now().UnixMicro(), benchValue); err != nil {
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
