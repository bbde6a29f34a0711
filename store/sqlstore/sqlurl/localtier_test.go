package sqlurl

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
)

// TestLocalTierAcrossProcessesOnPostgres: changes reach another process's local tier
// through LISTEN/NOTIFY, also when its LISTEN connection is terminated just before
// each change.
func TestLocalTierAcrossProcessesOnPostgres(t *testing.T) {
	url := testserver.Postgres(t).URL
	t.Run("notified", func(t *testing.T) { proctest.LocalTierAcrossProcesses(t, url, proctest.TierChanges, nil) })
	t.Run("connection killed", func(t *testing.T) {
		db, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		proctest.LocalTierAcrossProcesses(t, url, proctest.TierChanges, func(t testing.TB) {
			// The previous round's kill may still be reconnecting (with backoff): wait
			// until a LISTEN connection is there again, then terminate it.
			deadline := time.Now().Add(time.Minute)
			for {
				var n int
				err := db.QueryRowContext(context.Background(),
					`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`).Scan(&n)
				if err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("no LISTEN connection to terminate within a minute")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	})
}

// BenchmarkLocalTierCoherenceOnPostgres: from a change in one process to a miss in
// another process's local tier, over LISTEN/NOTIFY.
func BenchmarkLocalTierCoherenceOnPostgres(b *testing.B) {
	proctest.ReportCoherence(b, testserver.Postgres(b).URL, nil)
}

// BenchmarkLocalTierCoherencePolled: the same on MariaDB and SQLite, which cannot
// notify: the store's polling watcher of each marker row reads it 1ms after the last
// change it saw, then ever more slowly up to PollInterval (poll_interval, 100ms by
// default) apart, so a change reaches another process within PollInterval and one
// read. LocalTierBound (one second by default) holds even if that watcher fails.
func BenchmarkLocalTierCoherencePolled(b *testing.B) {
	for _, e := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"mariadb", mysqlURL},
		{"sqlite", func(b testing.TB) string { return "sqlite://" + filepath.Join(b.TempDir(), "cache.db") }},
	} {
		b.Run(e.name, func(b *testing.B) { proctest.ReportCoherence(b, e.url(b), nil) })
	}
}
