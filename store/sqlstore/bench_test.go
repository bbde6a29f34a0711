package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgnotify"
	"github.com/cachier-go/cachier/store/sqlstore/pgxpipe"
	"github.com/cachier-go/cachier/store/storetest"
)

// benchValue is what every Get benchmark reads: the store and the raw SELECT move the
// same bytes from the same server.
var benchValue = bytes.Repeat([]byte("cachier!"), 32) // 256 bytes

// benchStore returns a store on a fresh table of e holding benchValue under k.
func benchStore(b *testing.B, e engine) (*sql.DB, *sqlstore.Store, string, store.Key) {
	b.Helper()
	db := e.open(b)
	table := freshTable(b, db, e.dialect)
	s, err := sqlstore.New(db, &sqlstore.Options{Table: table, Pipeline: pgxpipe.Pipeliner{}}) // ignored but on PostgreSQL
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	k := store.Key{Namespace: "bench", ID: "hit"}
	if err := s.Set(context.Background(), k, store.Entry{Value: benchValue, StoredAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	return db, s, table, k
}

// rawSelect prepares, on db, the primary-key SELECT of one row of table that the store's
// Get runs, with no store in between: the baseline of the Get benchmarks. It is
// closed when b ends.
func rawSelect(b *testing.B, db *sql.DB, e engine, table string) *sql.Stmt {
	b.Helper()
	q := "SELECT stored_at, value FROM " + table + " WHERE namespace = ? AND id = ?"
	if e.dialect == sqlstore.Postgres {
		q = "SELECT stored_at, value FROM " + table + " WHERE namespace = $1 AND id = $2"
	}
	st, err := db.PrepareContext(context.Background(), q)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// rawGet reads one row with st, from rawSelect; a missing row is sql.ErrNoRows.
func rawGet(ctx context.Context, st *sql.Stmt, ns, id string) error {
	var at int64
	var v []byte
	return st.QueryRowContext(ctx, ns, id).Scan(&at, &v)
}

func BenchmarkGetHit(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			_, s, _, k := benchStore(b, e)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGetMiss(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			_, s, _, k := benchStore(b, e)
			k.ID = "missing"
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get(ctx, k); err == nil {
					b.Fatal("hit")
				}
			}
		})
	}
}

// BenchmarkRawSelect is the baseline: a prepared primary-key SELECT of the same row
// through the same *sql.DB, with no store in between.
func BenchmarkRawSelect(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			db, _, table, k := benchStore(b, e)
			st := rawSelect(b, db, e, table)
			ctx := context.Background()
			for _, id := range []string{"hit", "miss"} {
				b.Run(id, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						err := rawGet(ctx, st, k.Namespace, id)
						if (id == "hit") != (err == nil) {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkWake measures one Set, in another process's store (its own pool, no
// local broadcast), until a PostgreSQL watcher with a Listener wakes.
func BenchmarkWake(b *testing.B) {
	e := engines[1]
	db := e.open(b)
	table := freshTable(b, db, e.dialect)
	watcher, err := sqlstore.New(db, &sqlstore.Options{Table: table, Listener: pgnotify.Listener{}})
	if err != nil {
		b.Fatal(err)
	}
	defer watcher.Close()
	writer, err := sqlstore.New(e.open(b), &sqlstore.Options{Table: table})
	if err != nil {
		b.Fatal(err)
	}
	defer writer.Close()
	ctx := context.Background()
	k := store.Key{Namespace: "bench", ID: "wake"}
	if err := writer.Set(ctx, k, store.Entry{Value: benchValue, StoredAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	ch, stop, err := watcher.Watch(ctx, k)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	storetest.Drain(ch)
	for b.Loop() {
		if err := writer.Set(ctx, k, store.Entry{Value: benchValue, StoredAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			b.Fatal("no wake-up")
		}
	}
}

// BenchmarkSet is the upsert alone (on PostgreSQL it includes pg_notify).
func BenchmarkSet(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			_, s, _, k := benchStore(b, e)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Set(ctx, k, store.Entry{Value: benchValue, StoredAt: time.Now()}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStore runs the shared storetest benchmarks on every engine.
func BenchmarkStore(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			_, s, _, _ := benchStore(b, e)
			storetest.RunBenchmarks(b, s)
		})
	}
}

// BenchmarkGetVsRaw alternates the store's Get and the raw prepared SELECT of the same
// row, timing each, so that both see the same load on a shared machine; it reports
// both latencies and their ratio (store/raw).
func BenchmarkGetVsRaw(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			db, s, table, k := benchStore(b, e)
			st := rawSelect(b, db, e, table)
			ctx := context.Background()
			for _, id := range []string{"hit", "miss"} {
				b.Run(id, func(b *testing.B) {
					key := store.Key{Namespace: k.Namespace, ID: id}
					var storeT, rawT time.Duration
					for b.Loop() {
						t0 := time.Now()
						_, err := s.Get(ctx, key)
						t1 := time.Now()
						rerr := rawGet(ctx, st, key.Namespace, id)
						t2 := time.Now()
						if (id == "hit") != (err == nil) || (id == "hit") != (rerr == nil) {
							b.Fatal(err, rerr)
						}
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
