package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgnotify"
	"github.com/cachier-go/cachier/store/sqlstore/pgxpipe"
	"github.com/cachier-go/cachier/store/storetest"
)

// engine is one database to run the tests on.
type engine struct {
	name    string
	dialect sqlstore.Dialect
	// open returns a *sql.DB for the engine, or skips the test.
	open func(t testing.TB) *sql.DB
}

var engines = []engine{
	{"SQLite", sqlstore.SQLite, openSQLite},
	{"Postgres", sqlstore.Postgres, openPostgres},
	{"MariaDB", sqlstore.MySQL, openMySQL},
}

// openSQLite opens a fresh database file in the test's temporary directory, with the
// settings the package doc recommends.
func openSQLite(t testing.TB) *sql.DB {
	path := filepath.Join(t.TempDir(), "cache.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(t testing.TB) *sql.DB {
	db, err := sql.Open("pgx", postgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openMySQL(t testing.TB) *sql.DB {
	db, err := sql.Open("mysql", mysqlDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freshTable returns a table name no one uses and drops its tables when the test ends,
// so tests may share a server with anything else.
func freshTable(t testing.TB, db *sql.DB, d sqlstore.Dialect) string {
	name := "cachier_t" + randHex(6) + "_entries"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return name
}

type harness struct {
	db   *sql.DB
	opts sqlstore.Options
}

func (h harness) MakeStore(context.Context, *testing.T) (store.Driver, error) {
	return sqlstore.New(h.db, &h.opts)
}

func (harness) Close() {}

func conformance(t *testing.T, e engine, opts sqlstore.Options) {
	db := e.open(t)
	opts.Table = freshTable(t, db, e.dialect)
	storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return harness{db, opts} },
		storetest.Capabilities{})
}

func TestConformanceSQLite(t *testing.T) { conformance(t, engines[0], sqlstore.Options{}) }

func TestConformancePostgres(t *testing.T) {
	conformance(t, engines[1], sqlstore.Options{Listener: pgnotify.Listener{}, Pipeline: pgxpipe.Pipeliner{}})
}

// TestConformancePostgresPolling runs PostgreSQL without a Listener (watchers poll)
// and without a Pipeliner (not a store.GetOrCreator the portable layer uses; its
// GetOrCreate sends its two statements one at a time).
func TestConformancePostgresPolling(t *testing.T) { conformance(t, engines[1], sqlstore.Options{}) }

func TestConformanceMariaDB(t *testing.T) { conformance(t, engines[2], sqlstore.Options{}) }

// TestDetectDialect checks that New recognizes each driver without being told.
func TestDetectDialect(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			db := e.open(t)
			s, err := sqlstore.New(db, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Dialect() != e.dialect {
				t.Errorf("detected %v, want %v", s.Dialect(), e.dialect)
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	db := openSQLite(t)
	for _, tc := range []struct {
		name string
		opts sqlstore.Options
	}{
		{"injection", sqlstore.Options{Table: "x; DROP TABLE y"}},
		{"quote", sqlstore.Options{Table: `a"b`}},
		{"leading digit", sqlstore.Options{Table: "1abc"}},
		{"too long", sqlstore.Options{Table: "a234567890123456789012345678901234567890123456789012345678901234"}},
		{"dialect", sqlstore.Options{Dialect: 99}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := sqlstore.New(db, &tc.opts); err == nil {
				s.Close()
				t.Errorf("New(%+v) succeeded; want an error", tc.opts)
			}
		})
	}
	if _, err := sqlstore.New(nil, nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// TestConcurrentSchemaCreation has many goroutines, each with its own Store, create
// the same fresh tables at once: none may fail.
func TestConcurrentSchemaCreation(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			db := e.open(t)
			db.SetMaxOpenConns(20)
			table := freshTable(t, db, e.dialect)
			const n = 16
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					s, err := sqlstore.New(db, &sqlstore.Options{Table: table})
					if err != nil {
						errs <- err
						return
					}
					defer s.Close()
					<-start
					k := store.Key{Namespace: "schema", ID: fmt.Sprint(i)}
					if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
						errs <- fmt.Errorf("store %d: Set: %w", i, err)
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			s, err := sqlstore.New(db, &sqlstore.Options{Table: table})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			count := 0
			for _, err := range s.Entries(ctx, "schema") {
				if err != nil {
					t.Fatal(err)
				}
				count++
			}
			if count != n {
				t.Errorf("%d entries, want %d", count, n)
			}
		})
	}
}

// TestCorruptRow checks that a row the store cannot read (written by something else
// into a table with looser columns) is a miss matching ErrCorrupt, never a value.
func TestCorruptRow(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE loose_entries (namespace TEXT, id TEXT, stored_at, value, PRIMARY KEY (namespace, id))`); err != nil {
		t.Fatal(err)
	}
	rows := map[string][2]any{
		"null-value":  {int64(1), nil},
		"null-time":   {nil, []byte("v")},
		"text-time":   {"yesterday", []byte("v")},
		"float-time":  {1.5, []byte("v")},
		"good-anyway": {int64(1000), []byte("v")},
	}
	for id, r := range rows {
		if _, err := db.Exec(`INSERT INTO loose_entries VALUES ('ns', ?, ?, ?)`, id, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	s, err := sqlstore.New(db, &sqlstore.Options{Table: "loose_entries"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id := range rows {
		e, err := s.Get(ctx, store.Key{Namespace: "ns", ID: id})
		if id == "good-anyway" {
			if err != nil || string(e.Value) != "v" {
				t.Errorf("%s: %q, %v", id, e.Value, err)
			}
			continue
		}
		if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, sqlstore.ErrCorrupt) {
			t.Errorf("%s: Get = %q, %v; want an error matching ErrNotFound and ErrCorrupt", id, e.Value, err)
		}
	}
}

// TestSQLiteManyWriters has goroutines on separate connections write and take leases
// at once; SQLITE_BUSY must never surface.
func TestSQLiteManyWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		// A *sql.DB per writer, without busy_timeout: as if several processes.
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		d, err := sqlstore.New(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := store.Adapt(d)
		t.Cleanup(func() { s.Close() })
		wg.Go(func() {
			for i := range 50 {
				k := store.Key{Namespace: "busy", ID: fmt.Sprint(i % 7)}
				if err := s.Set(ctx, k, store.Entry{Value: []byte(fmt.Sprint(w, i)), StoredAt: time.Now()}); err != nil {
					errs <- err
					return
				}
				l, err := s.Acquire(ctx, k, store.Owner{Host: "h", PID: w, Token: randHex(4)}, time.Minute)
				if err == nil {
					err = s.Release(ctx, l)
				} else if errors.Is(err, store.ErrLeaseHeld) {
					err = nil
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestAcquireRace has many stores race for one key, repeatedly: exactly one wins each
// round, whatever the engine's locking.
func TestAcquireRace(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			db := e.open(t)
			table := freshTable(t, db, e.dialect)
			d, err := sqlstore.New(db, &sqlstore.Options{Table: table})
			if err != nil {
				t.Fatal(err)
			}
			s := store.Adapt(d)
			defer s.Close()
			ctx := context.Background()
			for round := range 5 {
				k := store.Key{Namespace: "race", ID: fmt.Sprint(round)}
				var mu sync.Mutex
				var winners []store.Lease
				var wg sync.WaitGroup
				for i := range 12 {
					wg.Go(func() {
						l, err := s.Acquire(ctx, k, store.Owner{Host: "h", PID: i, Token: randHex(8)}, time.Minute)
						switch {
						case err == nil:
							mu.Lock()
							winners = append(winners, l)
							mu.Unlock()
						case !errors.Is(err, store.ErrLeaseHeld):
							t.Errorf("Acquire: %v", err)
						}
					})
				}
				wg.Wait()
				if len(winners) != 1 {
					t.Fatalf("round %d: %d winners, want 1", round, len(winners))
				}
			}
		})
	}
}

// A table made before entries had an expiry gets the expires_at column on first use,
// and its old rows read as never expiring.
func TestOldTableGainsExpiresAt(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE cachier_entries (
	namespace TEXT NOT NULL, id TEXT NOT NULL, stored_at INTEGER NOT NULL, value BLOB NOT NULL,
	PRIMARY KEY (namespace, id))`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO cachier_entries VALUES ('ns', 'old', 1, x'01')`); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second store finds the column there
		s, err := sqlstore.New(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		exp := time.UnixMicro(time.Now().Add(time.Hour).UnixMicro())
		k := store.Key{Namespace: "ns", ID: "new"}
		if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now(), ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		if e, err := s.Get(ctx, k); err != nil || !e.ExpiresAt.Equal(exp) {
			t.Fatalf("Get = %+v, %v; want ExpiresAt %v", e, err, exp)
		}
		if e, err := s.Get(ctx, store.Key{Namespace: "ns", ID: "old"}); err != nil || !e.ExpiresAt.IsZero() {
			t.Fatalf("old row = %+v, %v; want no expiry", e, err)
		}
	}
}

// A MySQL table made when namespaces were at most 200 bytes is widened on first use,
// so that the portable layer's records of the longest namespace fit.
func TestOldMySQLTableWidened(t *testing.T) {
	e := engines[2]
	db := e.open(t)
	table := freshTable(t, db, e.dialect)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+` (namespace VARBINARY(200) NOT NULL, id VARBINARY(500) NOT NULL,
	stored_at BIGINT NOT NULL, value LONGBLOB NOT NULL, PRIMARY KEY (namespace, id)) ENGINE=InnoDB`); err != nil {
		t.Fatal(err)
	}
	d, err := sqlstore.New(db, &sqlstore.Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	s := store.Adapt(d)
	defer s.Close()
	k := store.Key{Namespace: strings.Repeat("n", store.MaxNamespaceLen), ID: "k"}
	if _, err := s.Acquire(ctx, k, store.Owner{Token: "t"}, time.Minute); err != nil {
		t.Fatalf("Acquire in the longest namespace: %v", err)
	}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}
