package sqlurl

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/storetest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

func parse(t *testing.T, raw string) (*Config, error) {
	t.Helper()
	return Parse(storetest.MustParseURL(t, raw))
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		url     string
		driver  string
		dsn     string // substring
		dialect sqlstore.Dialect
		memory  bool
		listen  bool
		table   string
		poll    time.Duration
	}{
		{url: "postgres://u:secret@db:5432/app?sslmode=disable", driver: "pgx", dsn: "sslmode=disable",
			dialect: sqlstore.Postgres, listen: true},
		{url: "postgresql://db/app?listen=false&table=c_entries&poll_interval=50ms", driver: "pgx",
			dsn: "postgres://db/app", dialect: sqlstore.Postgres, table: "c_entries", poll: 50 * time.Millisecond},
		{url: "mysql://root:pw@127.0.0.1:3307/test?tls=false", driver: "mysql", dsn: "root:pw@tcp(127.0.0.1:3307)/test",
			dialect: sqlstore.MySQL},
		{url: "mysql://root@dbhost/test", driver: "mysql", dsn: "@tcp(dbhost:3306)/test", dialect: sqlstore.MySQL},
		{url: "mysql://root@/test?socket=/run/mysqld.sock", driver: "mysql", dsn: "@unix(/run/mysqld.sock)/test", dialect: sqlstore.MySQL},
		{url: "sqlite:///var/cache/c.db", driver: "sqlite", dsn: "file:///var/cache/c.db?", dialect: sqlstore.SQLite},
		{url: "sqlite:rel/c.db?busy_timeout=5", driver: "sqlite", dsn: "_busy_timeout=5", dialect: sqlstore.SQLite},
		{url: "sqlite://:memory:", driver: "sqlite", dsn: "file::memory:?", dialect: sqlstore.SQLite, memory: true},
		{url: "sqlite::memory:", driver: "sqlite", dsn: "file::memory:?", dialect: sqlstore.SQLite, memory: true},
		{url: "sqlite:///tmp/a%3Fb.db", driver: "sqlite", dsn: "file:///tmp/a%3Fb.db?", dialect: sqlstore.SQLite},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, err := parse(t, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if c.Driver != tc.driver || !strings.Contains(c.DSN, tc.dsn) || c.Options.Dialect != tc.dialect ||
				c.Memory != tc.memory || c.Listen != tc.listen || c.Options.Table != tc.table ||
				c.Options.PollInterval != tc.poll || !c.Options.CloseDB {
				t.Errorf("Parse = %+v (dsn %q); want driver %s, dsn containing %q, dialect %v, memory %v, listen %v, table %q, poll %s",
					c, c.DSN, tc.driver, tc.dsn, tc.dialect, tc.memory, tc.listen, tc.table, tc.poll)
			}
			if c.Driver == "mysql" {
				if _, err := mysql.ParseDSN(c.DSN); err != nil {
					t.Errorf("DSN %q: %v", c.DSN, err)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // substring of the error
	}{
		{"postgres://u:hunter2@db/app?bogus=1", "unknown parameter \"bogus\"; accepted: application_name"},
		{"postgres://db/app?table=a-b", "table name"},
		{"postgres://db/app?lease_table=1x", "table name"},
		{"postgres://db/app?version_table=a-b", "table name"},
		{"postgres://db/app?poll_interval=soon", "poll_interval"},
		{"postgres://db/app?poll_interval=-1s", "poll_interval"},
		{"postgres://db/app?listen=maybe", "listen"},
		{"postgres://db/app?table=a&table=b", "given 2 times"},
		{"postgres://db/app?%zz", "query: "},
		{"mysql://u:hunter2@db/app?multiStatements=true", "unknown parameter \"multiStatements\""},
		{"mysql://u:hunter2@db/app?allowAllFiles=true", "unknown parameter"},
		{"mysql://u:hunter2@db/app?timeout=forever", "mysql driver rejects"},
		{"mysql://u@db/a/b", "slash"},
		{"mysql://u@db/a?socket=/s", "both a host and a socket"},
		{"mysql:opaque", "want mysql://"},
		{"sqlite://host/path.db", "three slashes"},
		{"sqlite://", "no database path"},
		{"sqlite://:memory:/x", "no path"},
		{"sqlite:///a.db?busy_timeout=-1", "busy_timeout"},
		{"sqlite:///a.db?journal_mode=fast", "journal_mode"},
		{"sqlite:///a.db?synchronous=maybe", "synchronous"},
		{"sqlite:///a.db?sslmode=disable", "unknown parameter"},
		{"sqlite://u:hunter2@/a.db", "no user"},
		{"redis://x", "scheme"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := parse(t, tc.url)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded; want an error containing %q", tc.url, tc.want)
			}
			if !errors.Is(err, store.ErrBadURL) {
				t.Errorf("error %v does not match store.ErrBadURL", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}
}

// FuzzParse checks that no URL makes the parser panic, that errors match ErrBadURL
// and never carry the password, and that MySQL DSNs it builds parse. It never connects.
func FuzzParse(f *testing.F) {
	storetest.FuzzURL(f, []string{
		"postgres://u:pw@db:5432/app?sslmode=disable&table=t", "mysql://u:pw@h:1/d?tls=true&socket=x",
		"sqlite:///a/b.db?busy_timeout=1", "sqlite://:memory:", "sqlite:rel%20x.db", "postgresql://[::1]:5/x?listen=0",
	}, Parse, func(t *testing.T, raw string, c *Config) {
		if _, err := mysql.ParseDSN(c.DSN); c.Driver == "mysql" && err != nil {
			t.Errorf("Parse(%q) built DSN that does not parse: %v", raw, err)
		}
	})
}

// roundTrip opens a store from a URL through store.Open and uses it.
func roundTrip(t *testing.T, raw string) {
	ctx := context.Background()
	s, err := store.Open(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if ss, ok := store.Unwrap(s).(*sqlstore.Store); ok && ss.Dialect() != sqlstore.SQLite {
			// The server may be shared: leave nothing behind.
			for _, tbl := range []string{"sqlurl_test_entries", "sqlurl_test_leases", "sqlurl_test_versions"} {
				if _, err := ss.DB().ExecContext(ctx, "DROP TABLE IF EXISTS "+tbl); err != nil {
					t.Error(err)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	k := store.Key{Namespace: "sqlurl-" + t.Name(), ID: "k"}
	defer s.Clear(ctx, k.Namespace)
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Get(ctx, k)
	if err != nil || string(e.Value) != "v" {
		t.Fatalf("Get = %q, %v", e.Value, err)
	}
	if n, ok := s.(store.Notifier); ok {
		ch, stop, err := n.Watch(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		go s.Delete(ctx, k)
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Error("no wake-up after Delete")
		}
	}
}

func TestOpenSQLiteFile(t *testing.T) {
	u := url.URL{Scheme: "sqlite", Path: filepath.ToSlash(filepath.Join(t.TempDir(), "a b?.db"))}
	roundTrip(t, u.String())
}

func TestOpenSQLiteMemory(t *testing.T) { roundTrip(t, "sqlite://:memory:") }

func TestOpenPostgres(t *testing.T) {
	roundTrip(t, testserver.Postgres(t).URL+"&table=sqlurl_test_entries")
}

func TestOpenMySQL(t *testing.T) {
	cfg, err := mysql.ParseDSN(testserver.MariaDB(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "mysql", User: url.UserPassword(cfg.User, cfg.Passwd), Host: cfg.Addr, Path: "/" + cfg.DBName,
		RawQuery: "table=sqlurl_test_entries"}
	if cfg.Passwd == "" {
		u.User = url.User(cfg.User)
	}
	roundTrip(t, u.String())
}
