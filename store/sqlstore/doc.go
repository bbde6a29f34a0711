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
// wake-ups and subpackage pgxpipe two statements in one round trip (both must import
// pgx), and subpackage sqlurl registers postgres://,
// postgresql://, mysql:// and sqlite:// with store.Open (it must import all three
// drivers). Keeping them apart means a program links only the driver it uses.
//
// # Schema
//
// One table, created on first use with CREATE TABLE IF NOT EXISTS (many processes may
// do so at once: PostgreSQL's duplicate-catalog errors from that race are retried):
//
//	cachier_entries (namespace, id, stored_at, value, expires_at) PRIMARY KEY (namespace, id)
//
// stored_at and expires_at are BIGINT unix microseconds (expires_at NULL: never);
// value is BYTEA, LONGBLOB or BLOB. Keys compare as bytes, so "A" and "a" are
// different keys: TEXT COLLATE "C" on PostgreSQL, VARBINARY on MySQL, TEXT (BINARY
// collation) on SQLite. One layout serves every dialect: because store keys are at
// most 200 + 500 bytes (201 for the portable layer's records, below), MySQL's
// VARBINARY primary key is 701 bytes, within InnoDB's index limit (3072 bytes, and
// even the old 767), so no hash column is needed and Get stays one primary-key lookup
// with the key as stored. Table names are validated ([ValidateTableName]) and quoted;
// every value travels as a parameter, in statements prepared once per store.
//
// A table made by an earlier version gains expires_at (ALTER TABLE … ADD COLUMN) and,
// on MySQL, a namespace column widened from 200 to 201 bytes, on first use. Earlier
// versions also kept cachier_leases and cachier_versions tables; they are left as
// they are, unused, and may be dropped. Counters kept there start again from "never
// bumped", which makes entries recorded under a bumped counter misses (computed
// again, never served stale); leases held there by processes of an earlier version
// are not seen, so do not mix versions on one table while they compute.
//
// # Leases and counters
//
// The Store is a store.Driver: store.Adapt (which cachier.WithStore and store.Open
// apply) keeps calculation leases and version counters as records of the entries
// table, in namespaces starting with store.InternalPrefix, with the lease rule and
// record layout of package store, the same on every engine. Those namespaces are
// never a user's: Entries and Clear of a namespace never reach its leases, and the
// portable layer hides them from Namespaces. What the driver adds is the atomic
// primitive, [Store.Swap], one statement each: create-if-absent is INSERT … ON
// CONFLICT DO NOTHING (ON DUPLICATE KEY UPDATE id = id on MySQL), compare-and-swap
// UPDATE … WHERE value = old, delete-if DELETE … WHERE value = old. A lease's expiry is
// judged by the clock of the process that reads it (store.WithClock), as on every
// engine.
//
// Two calls fold a miss's round trips together. [Store.GetAndCreate] reads the
// entry, the records beside it (counters) and creates the lease record if absent;
// [Store.SetAndDelete] stores the result, deletes the lease record if it is still
// the caller's, and reads the counters. GetAndCreate is two statements, the insert
// and then the reads, each with a snapshot of its own, so that the reads see an entry
// committed together with the release of the lease record the insert waited for
// ([Store.GetOrCreate] gives the argument): one round trip with a Pipeliner (below),
// else two, on every engine. SetAndDelete is one statement on PostgreSQL (a
// data-modifying WITH and a UNION ALL of primary-key reads); on MySQL and SQLite,
// where no statement both writes and reads, up to three, sent one after the other,
// except on MariaDB, where the delete reads the counters (DELETE … RETURNING): two.
// On SQLite, where a statement costs its work and not a round trip, and a write's
// cost is mostly its commit, the statements of each call run in one transaction:
// one commit for the lease, one for the result and the release.
//
// A batch (cachier's Batch) takes its leases and gives them up many at once:
// [Store.SwapMany] is, on PostgreSQL, one multi-row INSERT … ON CONFLICT DO NOTHING of
// every lease record, in the (sorted) order given, so that overlapping batches cannot
// deadlock, and one multi-row DELETE of the records released; on SQLite one
// transaction of Swaps; on MySQL one multi-row insert and one read to take them, and
// on MariaDB one DELETE … RETURNING to give them up. [Store.SetAndDeleteMany] stores the batch's results and
// releases its leases in one statement on PostgreSQL, one transaction on SQLite, and
// one multi-row upsert (then the deletes) on MySQL.
//
// With Options.Pipeline (pgxpipe.Pipeliner; sqlurl's postgres:// opener sets it) a
// PostgreSQL store is also a store.GetOrCreator, so that a cachier call's first read
// takes the lease when it finds no entry and a miss is two round trips, not three
// (lookup, GetAndCreate, SetAndDelete): [Store.GetOrCreate] sends the lease's
// conditional insert, then the reads, as two statements in one round trip, so that the
// reads see an entry committed together with the release of the lease the insert
// waited for. A hit then costs that pair of statements instead of a SELECT. They run
// in one implicit transaction, where only READ COMMITTED (PostgreSQL's default) gives
// the reads a snapshot of their own: under another default_transaction_isolation the
// store reads again, a round trip more, and logs it once. Without a Pipeliner (lib/pq,
// say), and on MySQL and SQLite, the store keeps the three round trips.
//
// # Wake-ups
//
// Store implements store.Notifier. On PostgreSQL every write that changes a row (Set,
// Delete, Clear, DeleteBefore, a Swap that swapped, GetAndCreate that created,
// SetAndDelete) calls pg_notify in the same statement, so the notification is sent
// when the change commits. With a Listener (package pgnotify) the store keeps one
// dedicated connection listening on the channel named after the entries table,
// opened on first use so that it is listening before anyone waits, multiplexing every
// key watched in the process, and wakes watchers within milliseconds (watchers of
// a whole namespace too: store.NamespaceNotifier, which cachier's local tier uses to
// drop its copies on the change's own notification; a change of a namespace's record
// made under store.WithOrigin carries the writer id in its payload, and the namespace
// watchers started under the same id skip it, so that the tier's own writes do not drop
// the copies it keeps of them); when that
// connection is lost, every watcher is woken (a notification may have been missed) and
// it reconnects with backoff. Without a Listener, and on MySQL and SQLite, each watcher
// polls the row (stored_at, expires_at, size, and the value of a small record such as a
// lease), 1ms apart at first and doubling to Options.PollInterval. The portable layer
// wakes the watchers of changes made through it at once, and a waiter wakes itself when
// the lease it waits on expires.
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
// SetMaxOpenConns(1). Entries reads a page at a time and closes each page's
// rows before yielding, so a loop body may call the store even on one connection.
//
// # Connection pools
//
// Give the *sql.DB room to keep its connections: database/sql keeps only two idle
// ones by default, so a burst of concurrent calls (a stampede's lookups) opens a
// connection per caller and closes all but two right after, and each new PostgreSQL
// connection is a forked backend. On one PostgreSQL, 4 processes x 64 callers of a
// 100 ms function took 2.5 s that way and 0.14 s with SetMaxOpenConns and
// SetMaxIdleConns at 4 per core, which is what sqlurl's opener sets (and, on a machine
// with a load average of 11-17 on 2 cores, 1.2 s before and 0.21 s after the two
// changes below).
//
// Two things keep a burst off the pool's back. Concurrent Gets of one key share a
// SELECT: while one is in flight, the Gets that arrive wait for it and share the next,
// which begins after all of them arrived (so none is answered with a row older than
// its call); a stampede's 64 lookups in a process are two round trips. And
// Options.WarmConns opens connections on first use (sqlurl's opener: 2), so that the
// first burst of a new process does not wait for backends to be forked.
//
// # Errors
//
// A missing entry is an error matching store.ErrNotFound. A row the store cannot read
// (a NULL or mistyped column written by something else) is an error matching both
// store.ErrNotFound and ErrCorrupt. A value larger than MySQL's max_allowed_packet is
// an error matching store.ErrTooLarge. Every other error is the driver's, unwrapped,
// so errors.As reaches *pgconn.PgError or *mysql.MySQLError.
package sqlstore
