// Package sqlurl registers the URL schemes of package sqlstore with store.Open:
//
//	postgres://user:pass@host:5432/db?sslmode=disable&table=cachier_entries
//	postgresql://...                       (the same)
//	mysql://user:pass@host:3306/db?tls=true
//	sqlite:///abs/path/cache.db            (an absolute path)
//	sqlite:relative/cache.db               (relative to the working directory)
//	sqlite://:memory:  or  sqlite::memory: (one connection, gone when closed)
//
// Import it for its side effect, or import github.com/cachier-go/cachier/store/all.
// It lives apart from sqlstore because opening a URL means choosing and importing the
// drivers (pgx, go-sql-driver/mysql and modernc.org/sqlite), while sqlstore imports
// only database/sql so that programs that build their own *sql.DB link only the driver
// they use. A store opened here owns its *sql.DB and closes it in Close.
//
// # Parameters
//
// Every scheme accepts:
//
//	table=NAME          entries table (default cachier_entries)
//	lease_table=NAME    checked as a table name, then ignored (see sqlstore.Options.LeaseTable)
//	version_table=NAME  checked as a table name, then ignored (sqlstore.Options.VersionTable)
//	poll_interval=DUR   longest poll interval of watchers without notifications (100ms)
//
// postgres also accepts listen=false (no LISTEN/NOTIFY connection; watchers poll) and
// the libpq and pgx connection parameters listed in [PostgresParams]. mysql accepts
// socket=/path (connect through a unix socket) and the driver parameters in
// [MySQLParams]. sqlite accepts busy_timeout (milliseconds, default 10000),
// journal_mode (default WAL) and synchronous (default NORMAL): SQLite then lets many
// goroutines and processes write without failing with SQLITE_BUSY. Any other
// parameter is an error matching store.ErrBadURL that lists the accepted ones.
package sqlurl

import (
	"context"
	"database/sql"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgnotify"
	"github.com/cachier-go/cachier/store/sqlstore/pgxpipe"
)

func init() {
	store.Register(Open, "postgres", "postgresql", "mysql", "sqlite")
}

// Parameters every scheme accepts.
var commonParams = []string{"table", "lease_table", "version_table", "poll_interval"}

// PostgresParams are the connection parameters a postgres:// URL may carry besides
// the common ones and listen; they are passed on to pgx.
var PostgresParams = []string{
	"application_name", "connect_timeout", "dbname", "default_query_exec_mode",
	"description_cache_capacity", "fallback_application_name", "host", "options", "passfile",
	"password", "port", "search_path", "service", "servicefile", "sslcert", "sslkey",
	"sslmode", "sslnegotiation", "sslpassword", "sslrootcert", "sslsni",
	"statement_cache_capacity", "target_session_attrs", "user",
}

// MySQLParams are the go-sql-driver/mysql parameters a mysql:// URL may carry besides
// the common ones and socket.
var MySQLParams = []string{
	"allowCleartextPasswords", "allowFallbackToPlaintext", "allowNativePasswords", "charset",
	"checkConnLiveness", "collation", "compress", "connectionAttributes", "interpolateParams",
	"maxAllowedPacket", "readTimeout", "rejectReadOnly", "serverPubKey", "timeout", "tls",
	"writeTimeout",
}

var sqliteParams = []string{"busy_timeout", "journal_mode", "synchronous"}

// Config is what a URL says, parsed without connecting.
type Config struct {
	// Driver is the database/sql driver name: "pgx", "mysql" or "sqlite".
	Driver string
	// DSN is the driver's data source name. It may hold a password: never print it.
	DSN string
	// Memory is set for an in-memory SQLite database, which must use one connection.
	Memory bool
	// Options for sqlstore.New (CloseDB is set; Listener is set by Open).
	Options sqlstore.Options
	// Listen reports whether a PostgreSQL store gets a LISTEN/NOTIFY connection.
	Listen bool
}

func badURL(u *url.URL, format string, args ...any) error {
	return store.BadURL(u, format, args...)
}

// Parse reads a postgres, postgresql, mysql or sqlite URL. It never connects.
// Errors match store.ErrBadURL and never contain the password.
func Parse(u *url.URL) (*Config, error) {
	c := &Config{Options: sqlstore.Options{CloseDB: true}}
	scheme := strings.ToLower(u.Scheme)
	var accepted []string
	switch scheme {
	case "postgres", "postgresql":
		accepted = slices.Concat(commonParams, []string{"listen"}, PostgresParams)
		c.Driver, c.Options.Dialect, c.Listen = "pgx", sqlstore.Postgres, true
	case "mysql":
		accepted = slices.Concat(commonParams, []string{"socket"}, MySQLParams)
		c.Driver, c.Options.Dialect = "mysql", sqlstore.MySQL
	case "sqlite":
		accepted = slices.Concat(commonParams, sqliteParams)
		c.Driver, c.Options.Dialect = "sqlite", sqlstore.SQLite
	default:
		return nil, badURL(u, "scheme %q is not postgres, postgresql, mysql or sqlite", u.Scheme)
	}
	p, err := store.ReadParams(u, accepted...)
	if err != nil {
		return nil, err
	}
	p.Check("table", &c.Options.Table, sqlstore.ValidateTableName)
	p.Check("lease_table", &c.Options.LeaseTable, sqlstore.ValidateTableName)
	p.Check("version_table", &c.Options.VersionTable, sqlstore.ValidateTableName)
	p.Duration("poll_interval", &c.Options.PollInterval)
	p.Bool("listen", &c.Listen)
	switch scheme {
	case "mysql":
		c.DSN, err = parseMySQL(u, p.String("socket"), p.Rest())
	case "sqlite":
		c.DSN, c.Memory, err = parseSQLite(u, p)
	default:
		d := *u
		d.Scheme = "postgres"
		d.RawQuery = p.Rest().Encode()
		d.Fragment, d.RawFragment = "", ""
		c.DSN = d.String()
	}
	if err == nil {
		err = p.Err()
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseMySQL(u *url.URL, sock string, q url.Values) (string, error) {
	if u.Opaque != "" {
		return "", badURL(u, "want mysql://user:pass@host:port/db")
	}
	cfg := mysql.NewConfig()
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if strings.Contains(cfg.DBName, "/") {
		return "", badURL(u, "database name %q contains a slash", cfg.DBName)
	}
	if sock != "" {
		if u.Host != "" {
			return "", badURL(u, "both a host and a socket")
		}
		cfg.Net, cfg.Addr = "unix", sock
	} else {
		cfg.Net, cfg.Addr = "tcp", u.Host
		if u.Port() == "" {
			host := u.Hostname()
			if host == "" {
				host = "127.0.0.1"
			}
			cfg.Addr = net.JoinHostPort(host, "3306")
		}
	}
	dsn := cfg.FormatDSN()
	if len(q) > 0 {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + q.Encode()
	}
	if _, err := mysql.ParseDSN(dsn); err != nil {
		// The driver's message may quote the DSN; say only which parameter failed.
		return "", badURL(u, "the mysql driver rejects the parameters: %s", store.Redact(strings.ReplaceAll(err.Error(), cfg.Passwd, "xxxxx")))
	}
	return dsn, nil
}

func parseSQLite(u *url.URL, p *store.Params) (dsn string, memory bool, err error) {
	path := u.Opaque
	switch {
	case path != "":
		if u.Host != "" || u.Path != "" {
			return "", false, badURL(u, "want sqlite:///abs/path.db, sqlite:rel/path.db or sqlite://:memory:")
		}
		path, err = url.PathUnescape(path)
		if err != nil {
			return "", false, badURL(u, "bad path")
		}
	case u.Host == ":memory:" || u.Host == "memory":
		if u.Path != "" {
			return "", false, badURL(u, "a memory database has no path")
		}
		path = ":memory:"
	case u.Host != "":
		return "", false, badURL(u, "host %q: want sqlite:///abs/path.db (three slashes) or sqlite:rel/path.db", u.Host)
	default:
		path = u.Path
	}
	if u.User != nil {
		return "", false, badURL(u, "sqlite takes no user")
	}
	if path == "" {
		return "", false, badURL(u, "no database path")
	}
	if strings.ContainsRune(path, 0) {
		return "", false, badURL(u, "path contains NUL")
	}
	memory = path == ":memory:"
	busy, jm, sync := 10000, "WAL", "NORMAL"
	p.Int("busy_timeout", 0, math.MaxInt32, &busy)
	p.OneOf("journal_mode", &jm, "DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF")
	p.OneOf("synchronous", &sync, "OFF", "NORMAL", "FULL", "EXTRA")
	opts := url.Values{}
	opts.Set("_busy_timeout", strconv.Itoa(busy))
	if !memory {
		opts.Set("_journal_mode", jm)
	}
	opts.Set("_synchronous", sync)
	if memory {
		return (&url.URL{Scheme: "file", Opaque: ":memory:", RawQuery: opts.Encode()}).String(), true, nil
	}
	// A "file:" URI, so that any character in the path survives (SQLite decodes %XX).
	f := &url.URL{Scheme: "file", Path: path, RawQuery: opts.Encode()}
	if !filepath.IsAbs(path) {
		f = &url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: opts.Encode()}
	}
	return f.String(), false, nil
}

// warmConns is how many connections a store opened here opens on first use, besides
// the one store.Open pinged on and the PostgreSQL listener's: enough for a burst's
// lookups (concurrent reads of one key share a SELECT) and its computation's lease
// and counters. Each costs the first call time (they open in parallel, and a
// background warm-up lost the race with the burst in the stampede benchmark).
const warmConns = 2

// Open opens the store a postgres, postgresql, mysql or sqlite URL names: a
// *sqlstore.Store under store.Adapt (store.Unwrap returns it). The store owns its
// *sql.DB and closes it in Close. Open checks the URL but does not connect:
// the first operation does.
func Open(ctx context.Context, u *url.URL) (store.Store, error) {
	c, err := Parse(u)
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	switch c.Driver {
	case "pgx":
		cfg, err := pgx.ParseConfig(c.DSN)
		if err != nil {
			return nil, badURL(u, "%s", store.Redact(err.Error()))
		}
		db = stdlib.OpenDB(*cfg)
		if c.Listen {
			c.Options.Listener = pgnotify.Listener{}
		}
		// A miss's first read takes the lease in the round trip of its lookup.
		c.Options.Pipeline = pgxpipe.Pipeliner{}
	default:
		db, err = sql.Open(c.Driver, c.DSN)
		if err != nil {
			return nil, badURL(u, "%s", store.Redact(err.Error()))
		}
	}
	if c.Driver != "sqlite" {
		// database/sql keeps only 2 idle connections by default: a burst of calls
		// (a stampede's lookups) opens a connection per caller and closes all but two
		// right after, and each new PostgreSQL connection is a forked backend. A
		// bounded pool whose connections stay open costs a short wait for a connection
		// instead (4 processes x 64 callers on one PostgreSQL: 2.5 s to 0.1x s), and
		// the store opens a few of them on first use, before a burst needs them.
		n := max(4, 4*runtime.GOMAXPROCS(0))
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		c.Options.WarmConns = warmConns
	}
	if c.Memory {
		// Every connection to :memory: is a database of its own: keep exactly one.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	}
	s, err := sqlstore.New(db, &c.Options)
	if err != nil {
		db.Close()
		return nil, badURL(u, "%v", err)
	}
	return store.Adapt(s), nil
}
