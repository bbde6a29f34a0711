package sqlstore

import (
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Dialect names the SQL engine behind a *sql.DB.
type Dialect int

// The supported dialects. The zero value asks New to detect the dialect from the
// driver's type.
const (
	// Detect is the zero Dialect: New looks at the type of db.Driver().
	Detect Dialect = iota
	// Postgres is PostgreSQL (9.5 or later), through any driver that uses $1 placeholders,
	// such as github.com/jackc/pgx/v5/stdlib or github.com/lib/pq.
	Postgres
	// MySQL is MySQL 5.7+ or MariaDB 10.3+, through github.com/go-sql-driver/mysql.
	MySQL
	// SQLite is SQLite 3.42 or later, through modernc.org/sqlite or
	// github.com/mattn/go-sqlite3.
	SQLite
)

// String returns the dialect's name.
func (d Dialect) String() string {
	switch d {
	case Detect:
		return "detect"
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	case SQLite:
		return "sqlite"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// detectDialect guesses the dialect from the package path and name of the driver's
// type, so that this package need not import any driver.
func detectDialect(db *sql.DB) (Dialect, error) {
	t := reflect.TypeOf(db.Driver())
	if t == nil {
		return Detect, errors.New("sqlstore: cannot detect the SQL dialect of a nil driver; set Options.Dialect")
	}
	name := t.String()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	id := strings.ToLower(t.PkgPath() + " " + name)
	switch {
	case strings.Contains(id, "pgx"), strings.Contains(id, "lib/pq"), strings.Contains(id, "postgres"):
		return Postgres, nil
	case strings.Contains(id, "mysql"), strings.Contains(id, "mariadb"):
		return MySQL, nil
	case strings.Contains(id, "sqlite"):
		return SQLite, nil
	}
	return Detect, fmt.Errorf("sqlstore: cannot detect the SQL dialect of driver %s (%s); set Options.Dialect", name, t.PkgPath())
}

// queries holds every statement of one store, written for its dialect and tables.
type queries struct {
	createEntries, createLeases, createVersions string
	// addExpiresAt adds the entries' expires_at column (NULL: never) to a table made
	// before it existed; "duplicate column" errors mean it is there already.
	addExpiresAt string
	// deleteExpired removes a namespace's entries whose expires_at has passed.
	deleteExpired string

	get, set, del, clear, deleteBefore string
	// getFrom is get after its select list, for GetVersioned to add counters to.
	getFrom string
	// entriesPage lists one page of a namespace's entries after a given id.
	entriesPage string
	namespaces  string
	fingerprint string // entry stored_at, lease token, lease expired, for polling watchers
	leaseTimer  string // lease expires_at and the server's now, for notified watchers

	acquire, holder, renew, renewCheck, release, leasesPage, releaseAll string

	// Version counters. versionOf is a scalar subquery reading one counter, with its
	// placeholder left as %s; Versions and GetVersioned put one per counter in a
	// statement built for their number of counters.
	bump, versionOf string
}

// nowMicros returns the SQL expression for the database server's clock in unix
// microseconds: the one clock every lease is measured by.
func (d Dialect) nowMicros() string {
	switch d {
	case Postgres:
		return "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000)::BIGINT"
	case MySQL:
		return "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
	default:
		return "CAST(unixepoch('subsec') * 1000000 AS INTEGER)"
	}
}

func (d Dialect) quote(ident string) string {
	if d == MySQL {
		return "`" + ident + "`"
	}
	return `"` + ident + `"`
}

// ph returns the n-th (1-based) placeholder.
func (d Dialect) ph(n int) string {
	if d == Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// buildQueries writes the statements. Table names are validated before they get here
// and quoted; every value travels as a parameter.
func buildQueries(d Dialect, entriesTable, leasesTable, versionsTable string) queries {
	e, l, v := d.quote(entriesTable), d.quote(leasesTable), d.quote(versionsTable)
	now := d.nowMicros()
	p := d.ph
	var q queries

	switch d {
	case Postgres:
		q.createEntries = `CREATE TABLE IF NOT EXISTS ` + e + ` (
	namespace TEXT COLLATE "C" NOT NULL,
	id TEXT COLLATE "C" NOT NULL,
	stored_at BIGINT NOT NULL,
	value BYTEA NOT NULL,
	PRIMARY KEY (namespace, id))`
		q.createLeases = `CREATE TABLE IF NOT EXISTS ` + l + ` (
	namespace TEXT COLLATE "C" NOT NULL,
	id TEXT COLLATE "C" NOT NULL,
	host TEXT NOT NULL,
	pid BIGINT NOT NULL,
	token TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (namespace, id))`
		q.createVersions = `CREATE TABLE IF NOT EXISTS ` + v + ` (
	name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	version BIGINT NOT NULL)`
	case MySQL:
		// VARBINARY keys compare bytes ("A" != "a") and fit InnoDB's index limits:
		// the contract caps them at 200 and 500 bytes, 700 in all.
		q.createEntries = `CREATE TABLE IF NOT EXISTS ` + e + ` (
	namespace VARBINARY(200) NOT NULL,
	id VARBINARY(500) NOT NULL,
	stored_at BIGINT NOT NULL,
	value LONGBLOB NOT NULL,
	PRIMARY KEY (namespace, id)) ENGINE=InnoDB`
		q.createLeases = `CREATE TABLE IF NOT EXISTS ` + l + ` (
	namespace VARBINARY(200) NOT NULL,
	id VARBINARY(500) NOT NULL,
	host BLOB NOT NULL,
	pid BIGINT NOT NULL,
	token BLOB NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (namespace, id)) ENGINE=InnoDB`
		q.createVersions = `CREATE TABLE IF NOT EXISTS ` + v + ` (
	name VARBINARY(500) NOT NULL PRIMARY KEY,
	version BIGINT NOT NULL) ENGINE=InnoDB`
	default:
		// TEXT compares with SQLite's BINARY collation: bytes, case-sensitive.
		q.createEntries = `CREATE TABLE IF NOT EXISTS ` + e + ` (
	namespace TEXT NOT NULL,
	id TEXT NOT NULL,
	stored_at INTEGER NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (namespace, id))`
		q.createLeases = `CREATE TABLE IF NOT EXISTS ` + l + ` (
	namespace TEXT NOT NULL,
	id TEXT NOT NULL,
	host TEXT NOT NULL,
	pid INTEGER NOT NULL,
	token TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (namespace, id))`
		q.createVersions = `CREATE TABLE IF NOT EXISTS ` + v + ` (
	name TEXT NOT NULL PRIMARY KEY,
	version INTEGER NOT NULL) WITHOUT ROWID`
	}

	switch d {
	case Postgres:
		q.addExpiresAt = `ALTER TABLE ` + e + ` ADD COLUMN IF NOT EXISTS expires_at BIGINT`
	case MySQL:
		q.addExpiresAt = `ALTER TABLE ` + e + ` ADD COLUMN expires_at BIGINT NULL`
	default:
		q.addExpiresAt = `ALTER TABLE ` + e + ` ADD COLUMN expires_at INTEGER`
	}
	q.getFrom = ` FROM ` + e + ` WHERE namespace = ` + p(1) + ` AND id = ` + p(2)
	q.get = `SELECT stored_at, value, expires_at` + q.getFrom
	ins := `INSERT INTO ` + e + ` (namespace, id, stored_at, value, expires_at) VALUES (` + p(1) + `, ` + p(2) + `, ` + p(3) + `, ` + p(4) + `, ` + p(5) + `)`
	switch d {
	case MySQL:
		q.set = ins + ` ON DUPLICATE KEY UPDATE stored_at = VALUES(stored_at), value = VALUES(value), expires_at = VALUES(expires_at)`
	default:
		q.set = ins + ` ON CONFLICT (namespace, id) DO UPDATE SET stored_at = excluded.stored_at, value = excluded.value, expires_at = excluded.expires_at`
	}
	q.deleteExpired = `DELETE FROM ` + e + ` WHERE namespace = ` + p(1) + ` AND expires_at IS NOT NULL AND expires_at <= ` + p(2)
	q.del = `DELETE FROM ` + e + ` WHERE namespace = ` + p(1) + ` AND id = ` + p(2)
	q.clear = `DELETE FROM ` + e + ` WHERE namespace = ` + p(1)
	q.deleteBefore = `DELETE FROM ` + e + ` WHERE namespace = ` + p(1) + ` AND stored_at < ` + p(2)
	length := "length(value)"
	if d == Postgres {
		length = "octet_length(value)"
	}
	q.entriesPage = `SELECT id, ` + length + `, stored_at, expires_at FROM ` + e + ` WHERE namespace = ` + p(1) + ` AND id > ` + p(2) +
		` ORDER BY id LIMIT ` + fmt.Sprint(pageSize)
	q.namespaces = `SELECT namespace FROM ` + e + ` UNION SELECT namespace FROM ` + l + ` WHERE expires_at > ` + now
	q.fingerprint = `SELECT (SELECT stored_at FROM ` + e + ` WHERE namespace = ` + p(1) + ` AND id = ` + p(2) + `),
	(SELECT token FROM ` + l + ` WHERE namespace = ` + p(3) + ` AND id = ` + p(4) + `),
	(SELECT CASE WHEN expires_at > ` + now + ` THEN 1 ELSE 0 END FROM ` + l + ` WHERE namespace = ` + p(5) + ` AND id = ` + p(6) + `)`
	q.leaseTimer = `SELECT expires_at - ` + now + ` FROM ` + l + ` WHERE namespace = ` + p(1) + ` AND id = ` + p(2)

	// Leases. One atomic statement takes a free or expired lease; the server's clock
	// decides what has expired.
	lins := `INSERT INTO ` + l + ` (namespace, id, host, pid, token, expires_at) VALUES (` +
		p(1) + `, ` + p(2) + `, ` + p(3) + `, ` + p(4) + `, ` + p(5) + `, ` + now + ` + ` + p(6) + `)`
	switch d {
	case MySQL:
		// Assignments run left to right and later ones see earlier results, so
		// expires_at, which every condition reads, is assigned last.
		cond := `expires_at <= ` + now
		set := func(col string) string { return col + ` = IF(` + cond + `, VALUES(` + col + `), ` + col + `)` }
		q.acquire = lins + ` ON DUPLICATE KEY UPDATE ` + set("host") + `, ` + set("pid") + `, ` + set("token") + `, ` + set("expires_at")
		q.renew = `UPDATE ` + l + ` SET expires_at = ` + now + ` + ? WHERE namespace = ? AND id = ? AND token = ?`
		q.renewCheck = `SELECT expires_at FROM ` + l + ` WHERE namespace = ? AND id = ? AND token = ?`
	default:
		q.acquire = lins + ` ON CONFLICT (namespace, id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
	token = excluded.token, expires_at = excluded.expires_at WHERE ` + l + `.expires_at <= ` + now + ` RETURNING expires_at`
		q.renew = `UPDATE ` + l + ` SET expires_at = ` + now + ` + ` + p(1) + ` WHERE namespace = ` + p(2) + ` AND id = ` + p(3) +
			` AND token = ` + p(4) + ` RETURNING expires_at`
	}
	q.holder = `SELECT host, pid, token, expires_at FROM ` + l + ` WHERE namespace = ` + p(1) + ` AND id = ` + p(2)
	q.release = `DELETE FROM ` + l + ` WHERE namespace = ` + p(1) + ` AND id = ` + p(2) + ` AND token = ` + p(3)
	q.leasesPage = `SELECT id, host, pid, token, expires_at FROM ` + l + ` WHERE namespace = ` + p(1) + ` AND id > ` + p(2) +
		` AND expires_at > ` + now + ` ORDER BY id LIMIT ` + fmt.Sprint(pageSize)
	q.releaseAll = `DELETE FROM ` + l + ` WHERE namespace = ` + p(1)

	// Counters hold a uint64 in a signed 64-bit column, bit for bit. Bump is a plain
	// upsert of a fresh random value.
	vins := `INSERT INTO ` + v + ` (name, version) VALUES (` + p(1) + `, ` + p(2) + `)`
	switch d {
	case MySQL:
		q.bump = vins + ` ON DUPLICATE KEY UPDATE version = VALUES(version)`
	default:
		q.bump = vins + ` ON CONFLICT (name) DO UPDATE SET version = excluded.version`
	}
	q.versionOf = `(SELECT version FROM ` + v + ` WHERE name = %s)`

	if d == Postgres {
		// Writes that waiters care about notify in the same statement, so the
		// notification is sent exactly when the change commits.
		q.set = `WITH w AS (` + q.set + `) SELECT pg_notify($6, $7)`
		q.del = `WITH w AS (` + q.del + ` RETURNING 1) SELECT pg_notify($3, $4) FROM (SELECT 1 FROM w LIMIT 1) x`
		q.clear = `WITH w AS (` + q.clear + ` RETURNING 1) SELECT pg_notify($2, $3) FROM (SELECT 1 FROM w LIMIT 1) x`
		q.deleteBefore = `WITH w AS (` + q.deleteBefore + ` RETURNING 1), c AS (SELECT count(*) AS n FROM w)
	SELECT n, (SELECT pg_notify($3, $4) WHERE c.n > 0)::text FROM c`
		q.release = `WITH w AS (` + q.release + ` RETURNING 1) SELECT pg_notify($4, $5) FROM (SELECT 1 FROM w LIMIT 1) x`
		q.releaseAll = `WITH w AS (` + q.releaseAll + ` RETURNING 1), c AS (SELECT count(*) AS n FROM w)
	SELECT n, (SELECT pg_notify($2, $3) WHERE c.n > 0)::text FROM c`
	}
	return q
}

// pageSize is how many rows Entries and Leases read per query. Pages are read whole
// and their rows closed before any is yielded, so a caller may use the store (even
// one with a single connection) inside the loop.
const pageSize = 500

// isBusy reports whether err is SQLite's "database is locked", which the store
// retries (see the package doc on SQLite).
func isBusy(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "SQLITE_BUSY") || strings.Contains(s, "database is locked") ||
		strings.Contains(s, "SQLITE_LOCKED") || strings.Contains(s, "database table is locked")
}

// isDeadlock reports whether err is MySQL's ER_LOCK_DEADLOCK (1213), after which the
// statement was rolled back and may be run again.
func isDeadlock(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "Error 1213") || strings.Contains(err.Error(), "Deadlock found"))
}

// sqlStater is implemented by the errors of pgx and lib/pq.
type sqlStater interface{ SQLState() string }

// isCreateRace reports whether err is one of the errors PostgreSQL can raise when two
// sessions run CREATE TABLE IF NOT EXISTS for the same table at once.
func isCreateRace(err error) bool {
	var se sqlStater
	if errors.As(err, &se) {
		switch se.SQLState() {
		case "23505", "42P07", "42710": // unique_violation (pg_type), duplicate_table, duplicate_object
			return true
		}
	}
	return false
}

// isTooLarge reports whether err says the value was larger than the server or the
// driver accepts (MySQL's max_allowed_packet).
func isTooLarge(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "max_allowed_packet") || strings.Contains(s, "packet for query is too large")
}
