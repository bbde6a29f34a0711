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

// queries holds every statement of one store, written for its dialect and table.
type queries struct {
	createEntries string
	// addExpiresAt adds the entries' expires_at column (NULL: never) to a table made
	// before it existed; "duplicate column" errors mean it is there already.
	addExpiresAt string
	// namespaceWidth (MySQL only) reads the width of the namespace column, and
	// widenNamespace widens a table made when it held 200 bytes, not 201 (the
	// portable layer's records have a one-byte prefix).
	namespaceWidth, widenNamespace string
	// deleteExpired removes a namespace's entries whose expires_at has passed.
	deleteExpired string

	get, set, del, clear, deleteBefore string
	// entriesPage lists one page of a namespace's entries after a given id.
	entriesPage string
	namespaces  string
	fingerprint string // what a polling watcher compares

	// Swap: create if absent, compare-and-swap, delete if the value is old. On
	// PostgreSQL each returns a row exactly when it changed something (and notified).
	create, replace, deleteIf string
	// rawSet and rawCreate are set and create without PostgreSQL's notification,
	// for statements that combine them.
	rawSet, rawCreate string
	// readRow is one row (tag, stored_at, value, expires_at) of a multi-key read; %d
	// is the tag, the placeholders are the key's namespace and id.
	readRow string
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

// buildQueries writes the statements. The table name is validated before it gets here
// and quoted; every value travels as a parameter.
func buildQueries(d Dialect, entriesTable string) queries {
	e := d.quote(entriesTable)
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
		q.addExpiresAt = `ALTER TABLE ` + e + ` ADD COLUMN IF NOT EXISTS expires_at BIGINT`
	case MySQL:
		// VARBINARY keys compare bytes ("A" != "a") and fit InnoDB's index limits:
		// namespaces are at most 201 bytes (200, and the portable layer's prefix),
		// ids 500.
		q.createEntries = `CREATE TABLE IF NOT EXISTS ` + e + ` (
	namespace VARBINARY(201) NOT NULL,
	id VARBINARY(500) NOT NULL,
	stored_at BIGINT NOT NULL,
	value LONGBLOB NOT NULL,
	PRIMARY KEY (namespace, id)) ENGINE=InnoDB`
		q.addExpiresAt = `ALTER TABLE ` + e + ` ADD COLUMN expires_at BIGINT NULL`
		q.namespaceWidth = `SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS
	WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'namespace'`
		q.widenNamespace = `ALTER TABLE ` + e + ` MODIFY namespace VARBINARY(201) NOT NULL`
	default:
		// TEXT compares with SQLite's BINARY collation: bytes, case-sensitive.
		q.createEntries = `CREATE TABLE IF NOT EXISTS ` + e + ` (
	namespace TEXT NOT NULL,
	id TEXT NOT NULL,
	stored_at INTEGER NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (namespace, id))`
		q.addExpiresAt = `ALTER TABLE ` + e + ` ADD COLUMN expires_at INTEGER`
	}

	key := ` WHERE namespace = ` + p(1) + ` AND id = ` + p(2)
	q.get = `SELECT stored_at, value, expires_at FROM ` + e + key
	ins := `INSERT INTO ` + e + ` (namespace, id, stored_at, value, expires_at) VALUES (` + p(1) + `, ` + p(2) + `, ` + p(3) + `, ` + p(4) + `, ` + p(5) + `)`
	switch d {
	case MySQL:
		q.set = ins + ` ON DUPLICATE KEY UPDATE stored_at = VALUES(stored_at), value = VALUES(value), expires_at = VALUES(expires_at)`
		// Not INSERT IGNORE, which would also turn errors into warnings. An
		// assignment that changes nothing leaves the affected-row count at 0.
		q.create = ins + ` ON DUPLICATE KEY UPDATE id = id`
	default:
		q.set = ins + ` ON CONFLICT (namespace, id) DO UPDATE SET stored_at = excluded.stored_at, value = excluded.value, expires_at = excluded.expires_at`
		q.create = ins + ` ON CONFLICT (namespace, id) DO NOTHING`
	}
	q.replace = `UPDATE ` + e + ` SET stored_at = ` + p(1) + `, value = ` + p(2) + `, expires_at = ` + p(3) +
		` WHERE namespace = ` + p(4) + ` AND id = ` + p(5) + ` AND value = ` + p(6)
	q.deleteIf = `DELETE FROM ` + e + key + ` AND value = ` + p(3)
	q.deleteExpired = `DELETE FROM ` + e + ` WHERE namespace = ` + p(1) + ` AND expires_at IS NOT NULL AND expires_at <= ` + p(2)
	q.del = `DELETE FROM ` + e + key
	q.clear = `DELETE FROM ` + e + ` WHERE namespace = ` + p(1)
	q.deleteBefore = `DELETE FROM ` + e + ` WHERE namespace = ` + p(1) + ` AND stored_at < ` + p(2)
	q.entriesPage = `SELECT id, length(value), stored_at, expires_at FROM ` + e + ` WHERE namespace = ` + p(1) + ` AND id > ` + p(2) +
		` ORDER BY id LIMIT ` + fmt.Sprint(pageSize)
	q.namespaces = `SELECT DISTINCT namespace FROM ` + e
	// A polling watcher compares stored_at, expires_at and the size, and the value
	// itself when it is small: the portable layer's lease records are, and two
	// leases never have the same bytes.
	q.fingerprint = `SELECT stored_at, expires_at, length(value), CASE WHEN length(value) <= 256 THEN value END FROM ` + e + key
	// The placeholders are filled in by number later (PostgreSQL) or bound in order.
	q.readRow = `SELECT %d, stored_at, value, expires_at FROM ` + e + ` WHERE namespace = %s AND id = %s`

	q.rawSet, q.rawCreate = q.set, q.create
	if d == Postgres {
		// Writes that waiters care about notify in the same statement, so the
		// notification is sent exactly when the change commits. Statements that
		// may change nothing return a row only when they did.
		notifyIfAny := func(stmt string, ch, payload int) string {
			return `WITH w AS (` + stmt + ` RETURNING 1) SELECT pg_notify(` + p(ch) + `, ` + p(payload) + `) FROM (SELECT 1 FROM w LIMIT 1) x`
		}
		q.set = `WITH w AS (` + q.set + `) SELECT pg_notify($6, $7)`
		q.create = notifyIfAny(q.create, 6, 7)
		q.replace = notifyIfAny(q.replace, 7, 8)
		q.deleteIf = notifyIfAny(q.deleteIf, 4, 5)
		q.del = notifyIfAny(q.del, 3, 4)
		q.clear = notifyIfAny(q.clear, 2, 3)
		q.deleteBefore = `WITH w AS (` + q.deleteBefore + ` RETURNING 1), c AS (SELECT count(*) AS n FROM w)
	SELECT n, (SELECT pg_notify($3, $4) WHERE c.n > 0)::text FROM c`
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
