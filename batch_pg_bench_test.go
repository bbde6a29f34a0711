package cachier_test

import (
	"context"
	"database/sql"
	"strconv"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgnotify"
	"github.com/cachier-go/cachier/store/sqlstore/pgxpipe"
)

// BenchmarkBatchTierPostgres: a 90%-cached batch (90 cached arguments, 10 new ones) on
// PostgreSQL, without and with the local tier, in the same run, so that their ratio
// can be read off: the writer's tier keeps its copies across its own writes (their
// notifications carry its writer id), so the tiered batch reads only its 10 new
// arguments from the store.
//
//	go test -run '^$' -bench BatchTierPostgres -count 5 .
func BenchmarkBatchTierPostgres(b *testing.B) {
	db, err := sql.Open("pgx", testserver.Postgres(b).URL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	table := "bench_tier_" + strconv.FormatInt(time.Now().UnixNano(), 36) + "_entries"
	b.Cleanup(func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + table) })
	st, err := sqlstore.New(db, &sqlstore.Options{Table: table, Listener: pgnotify.Listener{}, Pipeline: pgxpipe.Pipeliner{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	fn := func(_ context.Context, args []int) (map[int][]byte, error) {
		m := make(map[int][]byte, len(args))
		for _, a := range args {
			m[a] = benchPayload
		}
		return m, nil
	}
	ps := store.Adapt(st)
	name := "bench/batch-pg/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	plain, err := cachier.WrapBatch(fn, cachier.Name(name+"/plain"), cachier.WithStore(ps))
	if err != nil {
		b.Fatal(err)
	}
	tiered, err := cachier.WrapBatch(fn, cachier.Name(name+"/tier"), cachier.WithStore(ps), cachier.LocalTier(1_000_000, 0))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, bt := range []*cachier.Batch[int, []byte]{plain, tiered} {
		for range 3 { // computed; the tier's first reconcile drops what came before it; kept
			if _, err := bt.Call(ctx, benchBatchArgs(benchBatchSize)); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name string
		bt   *cachier.Batch[int, []byte]
	}{{"warm90", plain}, {"warm90-localtier", tiered}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			h := c.bt.Stats().LocalHits
			for b.Loop() {
				b.StopTimer()
				args := benchBatchArgs(90)
				b.StartTimer()
				if m, err := c.bt.Call(ctx, args); err != nil || len(m) != benchBatchSize {
					b.Fatalf("%d results, %v", len(m), err)
				}
			}
			b.ReportMetric(float64(c.bt.Stats().LocalHits-h)/float64(b.N), "local/op")
		})
	}
}
