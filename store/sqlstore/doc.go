// Package sqlstore is a cachier store on database/sql, for programs that already run
// PostgreSQL, MySQL/MariaDB or SQLite and would rather keep their cache there than run
// another server. Application code should use package cachier and pass it a Store:
//
//	db, err := sql.Open("pgx", "postgres://app@db/app") // your driver, pool and TLS
//	s, err := sqlstore.New(db, nil)                     // dialect detected from the driver
//	f, err := cachier.Wrap(fetchReport, cachier.WithStore(s))
//
// The package imports only database/sql: you bring the driver (pgx, lib/pq,
// go-sql-driver/mysql, modernc.org/sqlite, mattn/go-sqlite3) and keep owning the
// *sql.DB; Close never closes it. Subpackage pgnotify adds PostgreSQL LISTEN/NOTIFY
// wake-ups (it must import pgx), and subpackage sqlurl registers postgres://,
// postgresql://, mysql:// and sqlite:// with store.Open (it must import all three
// drivers). Keeping them apart means a program links only the driver it uses.
//
// # Schema
//
// Three tables, created on first use with CREATE TABLE IF NOT EXISTS (many processes
// may do so at once: PostgreSQL's duplicate-catalog errors from that race are retried):
//
//	cachier_entries  (namespace, id, stored_at, value)             PRIMARY KEY (namespace, id)
//	cachier_leases   (namespace, id, host, pid, token, expires_at) PRIMARY KEY (namespace, id)
//	cachier_versions (name, version)                               PRIMARY KEY (name)
//
// The versions table holds the counters of store.Versioner (tags, prefixes and
// dependencies); version is the counter's uint64 stored bit for bit in a signed 64-bit
// column. No namespace operation touches it, so counters survive Clear, DeleteBefore
// and ReleaseAll and are never listed by Namespaces. Bump is one upsert of a fresh
// random value; Versions is one statement of scalar subqueries, one primary-key lookup
// per counter; GetVersioned adds those subqueries to Get's SELECT, so a hit on a
// tagged entry is still one round trip.
//
// stored_at and expires_at are BIGINT unix microseconds; value is BYTEA, LONGBLOB or
// BLOB. Keys compare as bytes, so "A" and "a" are different keys: TEXT COLLATE "C" on
// PostgreSQL, VARBINARY on MySQL, TEXT (BINARY collation) on SQLite. One layout serves
// every dialect: because store keys are at most 200 + 500 bytes, MySQL's VARBINARY
// primary key is 700 bytes, within InnoDB's index limit (3072 bytes, and even the old
// 767; a counter name is VARBINARY(500)), so no hash column is needed and Get stays one primary-key lookup with the key
// as stored. Table names are validated ([ValidateTableName]) and quoted; every value
// travels as a parameter. Get and Set use prepared statements.
//
// # Leases and the clock
//
// Acquire is one atomic upsert that writes the new owner only where no lease exists
// or the existing one has expired: INSERT … ON CONFLICT DO UPDATE … WHERE expires_at
// <= now RETURNING on PostgreSQL and SQLite, and on MySQL INSERT … ON DUPLICATE KEY
// UPDATE col = IF(expires_at <= now, new, old) followed by reading the token back.
// Renew and Release compare the token. Expiry is always judged by one clock, the
// database server's (statement_timestamp(), UTC_TIMESTAMP(6), or SQLite's
// unixepoch('subsec') on the machine holding the file), so clients on machines whose
// clocks disagree still agree on who holds a lease. Lease.ExpiresAt is therefore the
// server's time. A lease that expired but was not taken over may still be renewed by
// its owner.
//
// # Wake-ups
//
// Store implements store.Notifier. On PostgreSQL every write that a waiter cares about
// (Set, Delete, Clear, DeleteBefore, Release, ReleaseAll) calls pg_notify in the same
// statement, so the notification is sent when the change commits. With a Listener
// (package pgnotify) the store keeps one dedicated connection listening on the
// channel named after the entries table, multiplexing every key watched in the
// process, and wakes watchers within milliseconds; a timer wakes them when the lease
// they wait on expires; when that connection is lost, every watcher is woken (a
// notification may have been missed) and it reconnects with backoff. Without a
// Listener, and on MySQL and SQLite, each watcher polls the entry's stored_at and the
// lease's owner and liveness, 1ms apart at first and doubling to
// Options.PollInterval; changes made through the same Store wake this process's
// watchers at once.
//
// # SQLite
//
// Open the database with a busy timeout and WAL, so that many goroutines and processes
// can read while one writes and writers queue instead of failing:
//
//	sql.Open("sqlite", "file:/path/cache.db?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL")
//
// (with mattn/go-sqlite3: _busy_timeout=10000&_journal_mode=WAL). The store does not
// change a database you pass in, but it retries a statement that still fails with
// SQLITE_BUSY (1ms doubling to 50ms, until the context ends), so a database opened
// without them works too, just slower under contention. sqlurl's sqlite:// opener sets
// all three. An in-memory database is private to one connection: give it
// SetMaxOpenConns(1). Entries and Leases read a page at a time and close each page's
// rows before yielding, so a loop body may call the store even on one connection.
//
// # Connection pools
//
// Give the *sql.DB room to keep its connections: database/sql keeps only two idle
// ones by default, so a burst of concurrent calls (a stampede's lookups) opens a
// connection per caller and closes all but two right after, and each new PostgreSQL
// connection is a forked backend. On one PostgreSQL, 4 processes x 64 callers of a
// 100 ms function took 2.5 s that way and 0.14 s with SetMaxOpenConns and
// SetMaxIdleConns at 4 per core, which is what sqlurl's opener sets.
//
// # Errors
//
// A missing entry is an error matching store.ErrNotFound. A row the store cannot read
// (a NULL or mistyped column written by something else) is an error matching both
// store.ErrNotFound and ErrCorrupt. A value larger than MySQL's max_allowed_packet is
// an error matching store.ErrTooLarge. Every other error is the driver's, unwrapped,
// so errors.As reaches *pgconn.PgError or *mysql.MySQLError.
package sqlstore
