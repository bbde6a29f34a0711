package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/store"
)

// ErrCorrupt reports a stored row that cannot be read back (a NULL or mistyped column,
// written by something other than this package). It is store.ErrCorrupt; errors that
// match it also match store.ErrNotFound, so callers treat such a row as a miss.
var ErrCorrupt = store.ErrCorrupt

// DefaultTable is the entries table used when Options.Table is empty.
const DefaultTable = "cachier_entries"

// DefaultPollInterval is the longest wait between two polls of a watcher that has no
// notifications (MySQL, SQLite, or PostgreSQL without a Listener).
const DefaultPollInterval = 100 * time.Millisecond

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ValidateTableName reports whether name is usable as a table name: it must match
// ^[A-Za-z_][A-Za-z0-9_]{0,62}$, which every dialect accepts quoted or not.
func ValidateTableName(name string) error {
	if !tableName.MatchString(name) {
		return fmt.Errorf("sqlstore: table name %q must match %s", name, tableName)
	}
	return nil
}

// Options configure a Store. The zero value (and nil) means defaults.
type Options struct {
	// Dialect is the SQL engine. Zero detects it from the driver's type and fails
	// with an error asking to set it when the driver is not recognized.
	Dialect Dialect
	// Table is the name of the entries table, default "cachier_entries". It must
	// match ^[A-Za-z_][A-Za-z0-9_]{0,62}$. It is also the PostgreSQL notification
	// channel.
	Table string
	// LeaseTable and VersionTable named the tables of leases and version counters
	// when the store kept its own. Leases and counters are now records of the
	// entries table, kept by the portable layer (store.Adapt); tables made by earlier
	// versions are left as they are, unused.
	//
	// Deprecated: ignored.
	LeaseTable, VersionTable string
	// Logger receives reports of background trouble (a lost notification
	// connection). Nil means slog.Default().
	Logger *slog.Logger
	// PollInterval is the longest wait between two polls of a watcher without
	// notifications. Polls start 1ms apart and double up to it. Zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Listener, if set, delivers PostgreSQL notifications so that watchers are woken
	// within milliseconds instead of polling; see package pgnotify. It is ignored by
	// the other dialects.
	Listener Listener
	// Pipeline, if set, sends statements to PostgreSQL several in one round trip;
	// package pgxpipe implements it with pgx. With it the store is a
	// store.GetOrCreator as well, and a miss of a cachier call costs two round trips
	// instead of three (see [Store.GetOrCreate]). It is ignored by the other dialects.
	Pipeline Pipeliner
	// WarmConns is how many connections of db's pool the store opens on first use,
	// all at once, before that first call goes on, so that a burst of calls (a
	// stampede's) finds them open instead of each opening one (on PostgreSQL, a
	// forked backend each: 100-200 ms apiece on a loaded machine). It is useful only
	// up to db's SetMaxIdleConns, which database/sql leaves at 2. Zero opens none
	// ahead of need.
	WarmConns int
	// CloseDB makes Close close db as well. It is for stores that own their *sql.DB,
	// such as those opened from a URL; leave it false for a db you passed in.
	CloseDB bool
}

// Store is a store.Driver on a *sql.DB, with the Swapper, ReadOrAcquirer,
// WriteAndReleaser, Lister, Batcher, Notifier and ExpiryCleaner capabilities, and
// GetOrCreator on PostgreSQL with Options.Pipeline. Use it
// through store.Adapt (cachier.WithStore and store.Open do so), which keeps the
// calculation leases and version counters as records of the entries table. It is safe
// for concurrent use.
type Store struct {
	db      *sql.DB
	dialect Dialect
	table   string
	q       queries
	log     *slog.Logger
	poll    time.Duration
	closeDB bool
	warm    int
	channel string // PostgreSQL notification channel: the entries table name

	schemaMu sync.Mutex
	ready    atomic.Bool // the table exists and has its columns
	// returning is set by init, before ready, on MariaDB, whose DELETE … RETURNING
	// lets SetAndDelete read the counters in its delete (see deleteReading).
	returning bool

	stmts  stmtCache
	reads  reads                                         // concurrent Gets of one key share a SELECT
	claims coalescer[claimKey, store.GetAndCreateResult] // and GetOrCreates their statements

	hub  hub
	lis  *listenerState // nil without notifications
	pipe Pipeliner      // nil unless PostgreSQL with Options.Pipeline
	// isoOnce logs, once, that a pipeline ran under an isolation level other than
	// READ COMMITTED (see pipelined).
	isoOnce sync.Once

	closeOnce sync.Once
	bgCtx     context.Context // done when the store is closed
	bgCancel  context.CancelFunc
	bgMu      sync.Mutex     // orders starting background goroutines with Close
	wg        sync.WaitGroup // background goroutines
}

var (
	_ store.Driver           = (*Store)(nil)
	_ store.Lister           = (*Store)(nil)
	_ store.Swapper          = (*Store)(nil)
	_ store.ReadOrAcquirer   = (*Store)(nil)
	_ store.GetOrCreator     = (*Store)(nil)
	_ store.WriteAndReleaser = (*Store)(nil)
	_ store.Notifier         = (*Store)(nil)
)

// New returns a store keeping entries, leases and counters in one table of db. It does
// not touch the database: the table is created on first use. Close does not close db
// unless opts.CloseDB is set.
func New(db *sql.DB, opts *Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	o := store.OptionsOf(opts)
	d := o.Dialect
	if d == Detect {
		var err error
		if d, err = detectDialect(db); err != nil {
			return nil, err
		}
	}
	if d != Postgres && d != MySQL && d != SQLite {
		return nil, fmt.Errorf("sqlstore: unknown dialect %v", d)
	}
	o.Table = cmp.Or(o.Table, DefaultTable)
	if err := ValidateTableName(o.Table); err != nil {
		return nil, err
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	s := &Store{
		db:      db,
		dialect: d,
		table:   o.Table,
		q:       buildQueries(d, o.Table),
		log:     o.Logger,
		poll:    o.PollInterval,
		closeDB: o.CloseDB,
		warm:    o.WarmConns,
		channel: o.Table,
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.hub.init()
	if d == Postgres && o.Listener != nil {
		s.lis = &listenerState{l: o.Listener, ready: make(chan struct{})}
	}
	if d == Postgres {
		s.pipe = o.Pipeline
	}
	return s, nil
}

// Dialect returns the store's SQL dialect.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB returns the database the store uses.
func (s *Store) DB() *sql.DB { return s.db }

// Close stops the store's watchers and its notification connection. It closes the
// *sql.DB only if Options.CloseDB was set. Close is idempotent.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.bgMu.Lock()
		s.bgCancel()
		s.bgMu.Unlock()
		s.wg.Wait()
		err = s.stmts.close()
		if s.closeDB {
			err = errors.Join(err, s.db.Close())
		}
	})
	return err
}

var errClosed = errors.New("sqlstore: store is closed")

// init creates the table (idempotently, tolerating other processes doing the same at
// once), brings a table made by an earlier version up to date, and starts the
// notification connection, so that it is listening before anyone waits. It is
// retried on the next call if it fails.
func (s *Store) init(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	s.schemaMu.Lock()
	defer s.schemaMu.Unlock()
	if s.ready.Load() {
		return nil
	}
	if s.bgCtx.Err() != nil {
		return errClosed
	}
	for _, ddl := range []string{s.q.createEntries, s.q.addExpiresAt} {
		for attempt := 0; ; attempt++ {
			_, err := s.exec(ctx, ddl)
			if err == nil || ddl == s.q.addExpiresAt && isDuplicateColumn(err) {
				break
			}
			if !isCreateRace(err) || attempt >= 5 {
				return fmt.Errorf("sqlstore: create table: %w", err)
			}
			// Another session created it between our check and our insert into the
			// catalog; the next IF NOT EXISTS sees it.
		}
	}
	if s.q.widenNamespace != "" {
		var width sql.NullInt64
		if err := s.db.QueryRowContext(ctx, s.q.namespaceWidth, s.table).Scan(&width); err != nil {
			return fmt.Errorf("sqlstore: read the namespace column: %w", err)
		}
		if width.Valid && width.Int64 < store.MaxNamespaceLen+1 {
			if _, err := s.exec(ctx, s.q.widenNamespace); err != nil {
				return fmt.Errorf("sqlstore: widen the namespace column: %w", err)
			}
		}
	}
	if s.dialect == MySQL {
		var version string
		if err := s.db.QueryRowContext(ctx, `SELECT VERSION()`).Scan(&version); err != nil {
			return fmt.Errorf("sqlstore: read the server version: %w", err)
		}
		s.returning = strings.Contains(version, "MariaDB")
	}
	if s.lis != nil {
		s.lis.startOnce.Do(func() { s.goBackground(s.runListener) })
	}
	s.warmUp(ctx)
	s.ready.Store(true)
	return nil
}

// warmUp opens Options.WarmConns connections at once and returns them to the pool.
// A connection that cannot be opened is left for later: the calls will open it.
func (s *Store) warmUp(ctx context.Context) {
	conns := make([]*sql.Conn, s.warm)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { conns[i], _ = s.db.Conn(ctx) })
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// stmtCache keeps the prepared statements of the store, one per query text, prepared
// on first use and closed by Store.Close. Statements of more than maxStmtParams
// parameters (reads of many keys at once, whose text differs with their number), and
// any beyond maxStmts, are sent unprepared.
type stmtCache struct {
	mu     sync.Mutex
	closed bool
	m      map[string]*sql.Stmt
}

const (
	maxStmts      = 64
	maxStmtParams = 24
)

// stmt returns the prepared statement of query, or nil when it is not to be kept.
func (s *Store) stmt(ctx context.Context, query string, params int) (*sql.Stmt, error) {
	if params > maxStmtParams {
		return nil, nil
	}
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if st := c.m[query]; st != nil {
		return st, nil
	}
	if len(c.m) >= maxStmts {
		return nil, nil
	}
	st, err := retry(ctx, s, func() (*sql.Stmt, error) { return s.db.PrepareContext(ctx, query) })
	if err != nil {
		return nil, fmt.Errorf("sqlstore: prepare: %w", err)
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var err error
	for _, st := range c.m {
		err = errors.Join(err, st.Close())
	}
	c.m = nil
	return err
}

// retryable reports whether a failed statement may simply be run again: SQLite's
// "database is locked", or a MySQL deadlock (InnoDB rolled the statement back; two
// upserts of one key can deadlock on its gap locks).
func (s *Store) retryable(err error) bool {
	switch s.dialect {
	case SQLite:
		return isBusy(err)
	case MySQL:
		return isDeadlock(err)
	}
	return false
}

// retry runs f again while it fails with an error that retryable accepts, with backoff,
// until ctx is done.
func retry[T any](ctx context.Context, s *Store, f func() (T, error)) (T, error) {
	v, err := f()
	if err == nil || !s.retryable(err) {
		return v, err
	}
	wait := time.Millisecond
	for s.retryable(err) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
		v, err = f()
	}
	return v, err
}

// exec runs a statement unprepared (schema changes).
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return retry(ctx, s, func() (sql.Result, error) { return s.db.ExecContext(ctx, query, args...) })
}

// run executes query with its prepared statement, creating the table first if needed,
// and again while the engine says busy.
func (s *Store) run(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	st, err := s.stmt(ctx, query, len(args))
	if err != nil {
		return nil, err
	}
	return retry(ctx, s, func() (sql.Result, error) {
		if st == nil {
			return s.db.ExecContext(ctx, query, args...)
		}
		return st.ExecContext(ctx, args...)
	})
}

// read runs query like run and hands its rows to scan, which must read them all; the
// whole read is retried while the engine says busy.
func read[T any](ctx context.Context, s *Store, query string, args []any, scan func(*sql.Rows) (T, error)) (T, error) {
	var zero T
	if err := s.init(ctx); err != nil {
		return zero, err
	}
	st, err := s.stmt(ctx, query, len(args))
	if err != nil {
		return zero, err
	}
	return retry(ctx, s, func() (T, error) {
		var rows *sql.Rows
		var err error
		if st == nil {
			rows, err = s.db.QueryContext(ctx, query, args...)
		} else {
			rows, err = st.QueryContext(ctx, args...)
		}
		if err != nil {
			return zero, err
		}
		defer rows.Close()
		v, err := scan(rows)
		if err != nil {
			return zero, err
		}
		if err := rows.Err(); err != nil {
			return zero, err
		}
		return v, rows.Close()
	})
}

// changed runs a statement that may change nothing and reports whether it changed a
// row: on PostgreSQL such statements return a row (their notification) exactly when
// they did, elsewhere the affected-row count says.
func (s *Store) changed(ctx context.Context, query string, args ...any) (int, error) {
	if s.dialect == Postgres {
		return read(ctx, s, query, args, func(r *sql.Rows) (int, error) {
			n := 0
			for r.Next() {
				n++
			}
			return n, nil
		})
	}
	res, err := s.run(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// notifyArgs appends, on PostgreSQL, the channel and the payload of a change of k made
// under ctx: tagged with the writer id store.WithOrigin gave ctx for k's namespace, if
// any, so that the writer's own namespace watchers are not woken by it (WatchNamespace).
func (s *Store) notifyArgs(ctx context.Context, args []any, k store.Key) []any {
	if s.dialect == Postgres {
		args = append(args, s.channel, s.changePayload(ctx, k))
	}
	return args
}

// payloads of PostgreSQL notifications: one key, or a whole namespace. A key's may
// start with the writer id of the change (originPayload).
func keyPayload(k store.Key) string {
	return "k" + strconv.Itoa(len(k.Namespace)) + ":" + k.Namespace + k.ID
}

// originPayload is the prefix of a key's payload that names the writer id of the
// change, or "" for none. Processes of versions that do not know it ignore such
// payloads (they parse neither as a key nor as a namespace): their watchers learn of
// the change from the lease record's notification or the local tier's marker, both
// untagged, as from a lost notification.
func originPayload(id string) string {
	if id == "" {
		return ""
	}
	return "o" + strconv.Itoa(len(id)) + ":" + id
}

func nsPayload(ns string) string { return "n" + ns }

// parsePayload is the inverse of keyPayload, with or without originPayload before it
// (the writer id, or ""), and of nsPayload.
func parsePayload(p string) (k store.Key, whole bool, origin string, ok bool) {
	if strings.HasPrefix(p, "o") {
		id, rest, ok := cutLength(p[1:])
		if !ok || id == "" || !strings.HasPrefix(rest, "k") {
			return k, false, "", false
		}
		k, _, ok = parseUntagged(rest)
		return k, false, id, ok
	}
	k, whole, ok = parseUntagged(p)
	return k, whole, "", ok
}

// cutLength splits "<n>:<rest>" into rest's first n bytes and what follows them.
func cutLength(p string) (head, tail string, ok bool) {
	n, rest, found := strings.Cut(p, ":")
	if !found || n == "" || n[0] < '1' || n[0] > '9' || strings.Trim(n, "0123456789") != "" {
		return "", "", false
	}
	l, err := strconv.Atoi(n)
	if err != nil || l > len(rest) {
		return "", "", false
	}
	return rest[:l], rest[l:], true
}

// parseUntagged is parsePayload of a payload without originPayload.
func parseUntagged(p string) (k store.Key, whole bool, ok bool) {
	switch {
	case strings.HasPrefix(p, "n"):
		return store.Key{Namespace: p[1:]}, true, len(p) > 1
	case strings.HasPrefix(p, "k"):
		ns, id, ok := cutLength(p[1:])
		return store.Key{Namespace: ns, ID: id}, false, ok
	}
	return k, false, false
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us) }

func corrupt(k store.Key, err error) error {
	return fmt.Errorf("%w: %w: %s: %v", store.ErrNotFound, ErrCorrupt, k, err)
}

// scanEntry reads stored_at, value and expires_at of the current row of k.
func scanEntry(k store.Key, r *sql.Rows, extra ...any) (store.Entry, error) {
	var at, exp sql.NullInt64
	var v sql.Null[[]byte]
	if err := r.Scan(append([]any{&at, &v, &exp}, extra...)...); err != nil {
		return store.Entry{}, corrupt(k, err)
	}
	return entry(k, at, v, exp)
}

// entry checks the columns of a row of k and makes its Entry.
func entry(k store.Key, at sql.NullInt64, v sql.Null[[]byte], exp sql.NullInt64) (store.Entry, error) {
	if !at.Valid || !v.Valid {
		return store.Entry{}, corrupt(k, errors.New("NULL column"))
	}
	if v.V == nil {
		v.V = []byte{}
	}
	return store.Entry{Value: v.V, StoredAt: fromMicros(at.Int64), ExpiresAt: fromNullMicros(exp)}, nil
}

// Get reads the entry with one primary-key SELECT. Concurrent Gets of one key share
// SELECTs (see reads), so that a stampede's lookups cost a few round trips, not one
// each.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	return s.reads.get(ctx, k, func(ctx context.Context) (store.Entry, error) { return s.get(ctx, k) })
}

// get is one SELECT of k.
func (s *Store) get(ctx context.Context, k store.Key) (store.Entry, error) {
	return read(ctx, s, s.q.get, []any{k.Namespace, k.ID}, func(r *sql.Rows) (store.Entry, error) {
		if !r.Next() {
			if err := r.Err(); err != nil {
				return store.Entry{}, err
			}
			return store.Entry{}, fmt.Errorf("%w: %s", store.ErrNotFound, k)
		}
		return scanEntry(k, r)
	})
}

// entryArgs are the parameters of an insert of e at k: namespace, id, stored_at, value
// and expires_at.
func entryArgs(k store.Key, e store.Entry) []any {
	v := e.Value
	if v == nil {
		v = []byte{} // NOT NULL: an empty value is still a value
	}
	return []any{k.Namespace, k.ID, micros(e.StoredAt), v, nullMicros(e.ExpiresAt)}
}

// tooLarge wraps the error of writing a value larger than the engine accepts.
func tooLarge(err error, e store.Entry) error {
	if isTooLarge(err) {
		return fmt.Errorf("%w: %d bytes: %w", store.ErrTooLarge, len(e.Value), err)
	}
	return err
}

// Set upserts the entry with one statement (and, on PostgreSQL, notifies watchers in
// that statement).
func (s *Store) Set(ctx context.Context, k store.Key, e store.Entry) error {
	_, err := s.run(ctx, s.q.set, s.notifyArgs(ctx, entryArgs(k, e), k)...)
	return tooLarge(err, e)
}

// Delete removes the entry.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	_, err := s.changed(ctx, s.q.del, s.notifyArgs(ctx, []any{k.Namespace, k.ID}, k)...)
	return err
}

// Clear removes every entry of the namespace. Only that namespace: the portable
// layer's leases of it are records of another one (store.InternalPrefix+namespace).
func (s *Store) Clear(ctx context.Context, namespace string) error {
	args := []any{namespace}
	if s.dialect == Postgres {
		args = append(args, s.channel, nsPayload(namespace))
	}
	_, err := s.changed(ctx, s.q.clear, args...)
	return err
}

// DeleteBefore removes the namespace's entries stored before t.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	args := []any{namespace, micros(t)}
	if s.dialect != Postgres {
		return s.changed(ctx, s.q.deleteBefore, args...)
	}
	args = append(args, s.channel, nsPayload(namespace))
	return read(ctx, s, s.q.deleteBefore, args, func(r *sql.Rows) (int, error) {
		var n int64
		var ignored sql.NullString
		if !r.Next() {
			return 0, errors.New("sqlstore: delete: no count")
		}
		err := r.Scan(&n, &ignored)
		return int(n), err
	})
}

// Entries lists the namespace's entries, in id order, a page at a time. Pages are read
// whole and their rows closed before any is yielded, so that a caller may use the
// store (even one with a single connection) inside the loop.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		after := ""
		for {
			page, err := read(ctx, s, s.q.entriesPage, []any{namespace, after}, func(r *sql.Rows) ([]store.Info, error) {
				var page []store.Info
				for r.Next() {
					var id string
					var size, at, exp sql.NullInt64
					if err := r.Scan(&id, &size, &at, &exp); err != nil {
						return nil, corrupt(store.Key{Namespace: namespace, ID: id}, err)
					}
					page = append(page, store.Info{Key: store.Key{Namespace: namespace, ID: id}, Size: size.Int64,
						StoredAt: fromMicros(at.Int64), ExpiresAt: fromNullMicros(exp)})
				}
				return page, nil
			})
			if err != nil {
				yield(store.Info{}, err)
				return
			}
			for _, info := range page {
				if !yield(info, nil) {
					return
				}
			}
			if len(page) < pageSize {
				return
			}
			after = page[len(page)-1].Key.ID
		}
	}
}

// Namespaces lists the namespaces that have rows, the portable layer's included (it
// maps them to the namespaces they serve).
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	return read(ctx, s, s.q.namespaces, nil, func(r *sql.Rows) ([]string, error) {
		var out []string
		for r.Next() {
			var ns string
			if err := r.Scan(&ns); err != nil {
				return nil, err
			}
			out = append(out, ns)
		}
		return out, nil
	})
}
