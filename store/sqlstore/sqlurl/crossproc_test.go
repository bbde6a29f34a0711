package sqlurl

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
)

// Cross-process guarantees through cachier, on each SQL engine: 4 processes x 16
// goroutines compute a cold key once, and a SIGKILLed holder is taken over.

func mysqlURL(t testing.TB) string {
	cfg, err := mysql.ParseDSN(testserver.MariaDB(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "mysql", User: url.UserPassword(cfg.User, cfg.Passwd), Host: cfg.Addr, Path: "/" + cfg.DBName,
		RawQuery: "table=proctest_entries"}
	if cfg.Passwd == "" {
		u.User = url.User(cfg.User)
	}
	return u.String()
}

func engines(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"postgres": func(t *testing.T) string { return testserver.Postgres(t).URL + "&table=proctest_entries" },
		"mariadb":  func(t *testing.T) string { return mysqlURL(t) },
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "cache.db") },
	}
}

func TestStampedeAcrossProcesses(t *testing.T) {
	for name, u := range engines(t) {
		t.Run(name, func(t *testing.T) { proctest.Stampede(t, u(t), 4, 16) })
	}
}

func TestKilledHolderIsTakenOver(t *testing.T) {
	for name, u := range engines(t) {
		t.Run(name, func(t *testing.T) { proctest.KillTakeover(t, u(t)) })
	}
}

func TestOutageThroughCachier(t *testing.T) {
	srv := testserver.Dedicated(t, testserver.KindPostgres)
	st, err := proctest.Open(context.Background(), srv.URL+"&table=outage_entries")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	proctest.Outage(t, st, func() { srv.Stop(t) }, func() { srv.Start(t) })
}

func TestInvalidationThroughCachier(t *testing.T) {
	for name, u := range engines(t) {
		t.Run(name, func(t *testing.T) {
			proctest.TagAcrossProcesses(t, u(t))
			st, err := proctest.Open(context.Background(), u(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			proctest.Invalidation(t, st)
		})
	}
}

func TestRefreshOnceAcrossProcesses(t *testing.T) {
	for name, u := range engines(t) {
		t.Run(name, func(t *testing.T) { proctest.RefreshOnce(t, u(t), 4, 16) })
	}
}

// The function-level behaviour with the local tier on, in one process and across
// processes: PostgreSQL notifies through LISTEN/NOTIFY, MariaDB and SQLite through the
// store's polling watchers (every PollInterval at most).
func TestLocalTierMatrix(t *testing.T) {
	for name, u := range engines(t) {
		t.Run(name, func(t *testing.T) { proctest.LocalTierMatrix(t, u(t), 0) })
	}
}
