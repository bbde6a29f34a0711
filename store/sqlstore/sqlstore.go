package sqlstore

import (
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
	// LeaseTable is the name of the leases table. The default is derived from Table:
	// "cachier_entries" gives "cachier_leases", any other name gets "_leases" appended.
	LeaseTable string
	// VersionTable is the name of the table of version counters (store.Versioner).
	// The default is derived from Table like LeaseTable's: "cachier_versions", or
	// Table with "_versions" appended.
	VersionTable string
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
	// CloseDB makes Close close db as well. It is for stores that own their *sql.DB,
	// such as those opened from a URL; leave it false for a db you passed in.
	CloseDB bool
}

// Store is a store.Store on a *sql.DB. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect Dialect
	q       queries
	log     *slog.Logger
	poll    time.Duration
	closeDB bool
	channel string // PostgreSQL notification channel: the entries table name

	schemaMu sync.Mutex
	ready    atomic.Pointer[stmts] // set once the tables exist and statements are prepared

	vstmts versionStmts // prepared statements of Versions and GetVersioned

	hub hub
	lis *listenerState // nil without notifications

	closeOnce sync.Once
	bgCtx     context.Context // done when the store is closed
	bgCancel  context.CancelFunc
	bgMu      sync.Mutex     // orders starting background goroutines with Close
	wg        sync.WaitGroup // background goroutines
}

// stmts are the statements on the hot path, prepared once the schema exists.
type stmts struct {
	get, set *sql.Stmt
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// New returns a store keeping entries and leases in db. It does not touch the
// database: tables are created on first use. Close does not close db unless
// opts.CloseDB is set.
func New(db *sql.DB, opts *Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
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
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if o.LeaseTable == "" {
		if base, ok := strings.CutSuffix(o.Table, "_entries"); ok && base != "" {
			o.LeaseTable = base + "_leases"
		} else {
			o.LeaseTable = o.Table + "_leases"
		}
	}
	if o.VersionTable == "" {
		if base, ok := strings.CutSuffix(o.Table, "_entries"); ok && base != "" {
			o.VersionTable = base + "_versions"
		} else {
			o.VersionTable = o.Table + "_versions"
		}
	}
	for _, n := range []string{o.Table, o.LeaseTable, o.VersionTable} {
		if err := ValidateTableName(n); err != nil {
			return nil, err
		}
	}
	switch {
	case strings.EqualFold(o.Table, o.LeaseTable):
		return nil, fmt.Errorf("sqlstore: the entries and leases tables are both %q", o.Table)
	case strings.EqualFold(o.Table, o.VersionTable):
		return nil, fmt.Errorf("sqlstore: the entries and versions tables are both %q", o.Table)
	case strings.EqualFold(o.LeaseTable, o.VersionTable):
		return nil, fmt.Errorf("sqlstore: the leases and versions tables are both %q", o.LeaseTable)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Store{
		db:      db,
		dialect: d,
		q:       buildQueries(d, o.Table, o.LeaseTable, o.VersionTable),
		log:     o.Logger,
		poll:    o.PollInterval,
		closeDB: o.CloseDB,
		channel: o.Table,
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.hub.init()
	if d == Postgres && o.Listener != nil {
		s.lis = &listenerState{l: o.Listener, ready: make(chan struct{})}
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
		if st := s.ready.Load(); st != nil {
			err = errors.Join(st.get.Close(), st.set.Close())
		}
		err = errors.Join(err, s.vstmts.close())
		if s.closeDB {
			err = errors.Join(err, s.db.Close())
		}
	})
	return err
}

var errClosed = errors.New("sqlstore: store is closed")

// init creates the tables (idempotently, tolerating other processes doing the same at
// once) and prepares the hot statements. It is retried on the next call if it fails.
func (s *Store) init(ctx context.Context) (*stmts, error) {
	if st := s.ready.Load(); st != nil {
		return st, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.schemaMu.Lock()
	defer s.schemaMu.Unlock()
	if st := s.ready.Load(); st != nil {
		return st, nil
	}
	if s.bgCtx.Err() != nil {
		return nil, errClosed
	}
	for _, ddl := range []string{s.q.createEntries, s.q.addExpiresAt, s.q.createLeases, s.q.createVersions} {
		for attempt := 0; ; attempt++ {
			_, err := s.exec(ctx, ddl)
			if err == nil || ddl == s.q.addExpiresAt && isDuplicateColumn(err) {
				break
			}
			if !isCreateRace(err) || attempt >= 5 {
				return nil, fmt.Errorf("sqlstore: create table: %w", err)
			}
			// Another session created it between our check and our insert into the
			// catalog; the next IF NOT EXISTS sees it.
		}
	}
	prepare := func(query string) (*sql.Stmt, error) {
		return retry(ctx, s, func() (*sql.Stmt, error) { return s.db.PrepareContext(ctx, query) })
	}
	get, err := prepare(s.q.get)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: prepare: %w", err)
	}
	set, err := prepare(s.q.set)
	if err != nil {
		get.Close()
		return nil, fmt.Errorf("sqlstore: prepare: %w", err)
	}
	st := &stmts{get: get, set: set}
	s.ready.Store(st)
	return st, nil
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

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return retry(ctx, s, func() (sql.Result, error) { return s.db.ExecContext(ctx, query, args...) })
}

// payloads of PostgreSQL notifications: one key, or a whole namespace.
func keyPayload(k store.Key) string {
	return "k" + strconv.Itoa(len(k.Namespace)) + ":" + k.Namespace + k.ID
}

func nsPayload(ns string) string { return "n" + ns }

// parsePayload is the inverse of keyPayload and nsPayload.
func parsePayload(p string) (k store.Key, whole bool, ok bool) {
	switch {
	case strings.HasPrefix(p, "n"):
		return store.Key{Namespace: p[1:]}, true, len(p) > 1
	case strings.HasPrefix(p, "k"):
		n, rest, found := strings.Cut(p[1:], ":")
		if !found {
			return k, false, false
		}
		if n == "" || n[0] < '1' || n[0] > '9' || strings.Trim(n, "0123456789") != "" {
			return k, false, false
		}
		l, err := strconv.Atoi(n)
		if err != nil || l > len(rest) {
			return k, false, false
		}
		return store.Key{Namespace: rest[:l], ID: rest[l:]}, false, true
	}
	return k, false, false
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us) }

func corrupt(k store.Key, err error) error {
	return fmt.Errorf("%w: %w: %s: %v", store.ErrNotFound, ErrCorrupt, k, err)
}

// Get reads the entry with one primary-key SELECT.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	if err := k.Validate(); err != nil {
		return store.Entry{}, err
	}
	st, err := s.init(ctx)
	if err != nil {
		return store.Entry{}, err
	}
	return retry(ctx, s, func() (store.Entry, error) {
		rows, err := st.get.QueryContext(ctx, k.Namespace, k.ID)
		if err != nil {
			return store.Entry{}, err
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return store.Entry{}, err
			}
			return store.Entry{}, fmt.Errorf("%w: %s", store.ErrNotFound, k)
		}
		var at, exp sql.NullInt64
		var v sql.Null[[]byte]
		if err := rows.Scan(&at, &v, &exp); err != nil {
			return store.Entry{}, corrupt(k, err)
		}
		if !at.Valid || !v.Valid {
			return store.Entry{}, corrupt(k, errors.New("NULL column"))
		}
		if v.V == nil {
			v.V = []byte{}
		}
		return store.Entry{Value: v.V, StoredAt: fromMicros(at.Int64), ExpiresAt: fromNullMicros(exp)}, rows.Close()
	})
}

// Set upserts the entry with one statement (and, on PostgreSQL, notifies watchers in
// that statement).
func (s *Store) Set(ctx context.Context, k store.Key, e store.Entry) error {
	if err := k.Validate(); err != nil {
		return err
	}
	st, err := s.init(ctx)
	if err != nil {
		return err
	}
	v := e.Value
	if v == nil {
		v = []byte{} // NOT NULL: an empty value is still a value
	}
	args := []any{k.Namespace, k.ID, micros(e.StoredAt), v, nullMicros(e.ExpiresAt)}
	if s.dialect == Postgres {
		args = append(args, s.channel, keyPayload(k))
	}
	_, err = retry(ctx, s, func() (sql.Result, error) { return st.set.ExecContext(ctx, args...) })
	if err != nil {
		if isTooLarge(err) {
			return fmt.Errorf("%w: %d bytes: %w", store.ErrTooLarge, len(v), err)
		}
		return err
	}
	s.hub.kick(k, false)
	return nil
}

// Delete removes the entry.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if _, err := s.init(ctx); err != nil {
		return err
	}
	args := []any{k.Namespace, k.ID}
	if s.dialect == Postgres {
		args = append(args, s.channel, keyPayload(k))
	}
	if _, err := s.exec(ctx, s.q.del, args...); err != nil {
		return err
	}
	s.hub.kick(k, false)
	return nil
}

// Clear removes every entry of the namespace.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	if err := store.ValidateNamespace(namespace); err != nil {
		return err
	}
	if _, err := s.init(ctx); err != nil {
		return err
	}
	args := []any{namespace}
	if s.dialect == Postgres {
		args = append(args, s.channel, nsPayload(namespace))
	}
	if _, err := s.exec(ctx, s.q.clear, args...); err != nil {
		return err
	}
	s.hub.kick(store.Key{Namespace: namespace}, true)
	return nil
}

// countAndNotify runs a PostgreSQL statement that returns (count, notify result), or
// another dialect's DELETE, and returns the number of rows it removed.
func (s *Store) countAndNotify(ctx context.Context, query string, args ...any) (int, error) {
	if s.dialect == Postgres {
		var n int64
		var ignored sql.NullString
		if err := s.db.QueryRowContext(ctx, query, args...).Scan(&n, &ignored); err != nil {
			return 0, err
		}
		return int(n), nil
	}
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DeleteBefore removes the namespace's entries stored before t.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	if err := store.ValidateNamespace(namespace); err != nil {
		return 0, err
	}
	if _, err := s.init(ctx); err != nil {
		return 0, err
	}
	args := []any{namespace, micros(t)}
	if s.dialect == Postgres {
		args = append(args, s.channel, nsPayload(namespace))
	}
	n, err := s.countAndNotify(ctx, s.q.deleteBefore, args...)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		s.hub.kick(store.Key{Namespace: namespace}, true)
	}
	return n, nil
}

// pages yields rows read a page at a time, keyed by id. Each page is read whole and its
// rows closed before any is yielded.
func pages[T any](ctx context.Context, s *Store, namespace, query string,
	scan func(*sql.Rows) (T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if err := store.ValidateNamespace(namespace); err != nil {
			yield(zero, err)
			return
		}
		if _, err := s.init(ctx); err != nil {
			yield(zero, err)
			return
		}
		after := ""
		for {
			page, err := retry(ctx, s, func() ([]T, error) {
				rows, err := s.db.QueryContext(ctx, query, namespace, after)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				var page []T
				for rows.Next() {
					v, id, err := scan(rows)
					if err != nil {
						return nil, err
					}
					page = append(page, v)
					after = id
				}
				return page, rows.Err()
			})
			if err != nil {
				yield(zero, err)
				return
			}
			for _, v := range page {
				if !yield(v, nil) {
					return
				}
			}
			if len(page) < pageSize {
				return
			}
		}
	}
}

// Entries lists the namespace's entries, in id order, a page at a time.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return pages(ctx, s, namespace, s.q.entriesPage, func(r *sql.Rows) (store.Info, string, error) {
		var id string
		var size, at, exp sql.NullInt64
		if err := r.Scan(&id, &size, &at, &exp); err != nil {
			return store.Info{}, "", corrupt(store.Key{Namespace: namespace, ID: id}, err)
		}
		return store.Info{Key: store.Key{Namespace: namespace, ID: id}, Size: size.Int64, StoredAt: fromMicros(at.Int64), ExpiresAt: fromNullMicros(exp)}, id, nil
	})
}

// Namespaces lists the namespaces with entries or unexpired leases.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	if _, err := s.init(ctx); err != nil {
		return nil, err
	}
	return retry(ctx, s, func() ([]string, error) {
		rows, err := s.db.QueryContext(ctx, s.q.namespaces)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var ns string
			if err := rows.Scan(&ns); err != nil {
				return nil, err
			}
			out = append(out, ns)
		}
		return out, rows.Err()
	})
}

// Acquire takes the lease with one atomic upsert that succeeds only where no lease
// exists or the existing one has expired by the database server's clock.
func (s *Store) Acquire(ctx context.Context, k store.Key, o store.Owner, ttl time.Duration) (store.Lease, error) {
	if err := k.Validate(); err != nil {
		return store.Lease{}, err
	}
	if ttl <= 0 {
		return store.Lease{}, fmt.Errorf("sqlstore: acquire %s: ttl %s is not positive", k, ttl)
	}
	if _, err := s.init(ctx); err != nil {
		return store.Lease{}, err
	}
	ttlUS := max(ttl.Microseconds(), 1)
	for range 3 {
		var exp int64
		var won bool
		var err error
		if s.dialect == MySQL {
			// No RETURNING: the upsert changed the row only if the lease was free or
			// expired, and the token read back tells whose it is now.
			if _, err = s.exec(ctx, s.q.acquire, k.Namespace, k.ID, o.Host, o.PID, o.Token, ttlUS); err != nil {
				return store.Lease{}, err
			}
		} else {
			exp, err = retry(ctx, s, func() (int64, error) {
				var exp int64
				err := s.db.QueryRowContext(ctx, s.q.acquire, k.Namespace, k.ID, o.Host, o.PID, o.Token, ttlUS).Scan(&exp)
				return exp, err
			})
			switch {
			case err == nil:
				return store.Lease{Key: k, Owner: o, ExpiresAt: fromMicros(exp)}, nil
			case !errors.Is(err, sql.ErrNoRows):
				return store.Lease{}, err
			}
		}
		holder, err := s.holder(ctx, k)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // released between the two statements: try again
		case err != nil:
			return store.Lease{}, err
		}
		if s.dialect == MySQL && holder.Owner.Token == o.Token {
			won = true
		}
		if won {
			holder.Owner = o
			return holder, nil
		}
		return store.Lease{}, &store.HeldError{Holder: holder}
	}
	return store.Lease{}, &store.HeldError{Holder: store.Lease{Key: k}}
}

// holder reads the current lease row of k.
func (s *Store) holder(ctx context.Context, k store.Key) (store.Lease, error) {
	return retry(ctx, s, func() (store.Lease, error) {
		var l store.Lease
		var pid, exp int64
		err := s.db.QueryRowContext(ctx, s.q.holder, k.Namespace, k.ID).Scan(&l.Owner.Host, &pid, &l.Owner.Token, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return l, store.ErrNotFound
		}
		if err != nil {
			return l, err
		}
		l.Key, l.Owner.PID, l.ExpiresAt = k, int(pid), fromMicros(exp)
		return l, nil
	})
}

// Renew extends the lease if l.Owner's token still holds it. A lease that expired but
// was not taken over is still its owner's and is renewed.
func (s *Store) Renew(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error) {
	k := l.Key
	if err := k.Validate(); err != nil {
		return store.Lease{}, err
	}
	if ttl <= 0 {
		return store.Lease{}, fmt.Errorf("sqlstore: renew %s: ttl %s is not positive", k, ttl)
	}
	if _, err := s.init(ctx); err != nil {
		return store.Lease{}, err
	}
	ttlUS := max(ttl.Microseconds(), 1)
	exp, err := retry(ctx, s, func() (int64, error) {
		var exp int64
		if s.dialect == MySQL {
			if _, err := s.db.ExecContext(ctx, s.q.renew, ttlUS, k.Namespace, k.ID, l.Owner.Token); err != nil {
				return 0, err
			}
			return exp, s.db.QueryRowContext(ctx, s.q.renewCheck, k.Namespace, k.ID, l.Owner.Token).Scan(&exp)
		}
		return exp, s.db.QueryRowContext(ctx, s.q.renew, ttlUS, k.Namespace, k.ID, l.Owner.Token).Scan(&exp)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Lease{}, fmt.Errorf("%w: %s by %s", store.ErrLeaseLost, k, l.Owner)
	}
	if err != nil {
		return store.Lease{}, err
	}
	return store.Lease{Key: k, Owner: l.Owner, ExpiresAt: fromMicros(exp)}, nil
}

// Release deletes the lease if l.Owner's token still holds it.
func (s *Store) Release(ctx context.Context, l store.Lease) error {
	k := l.Key
	if err := k.Validate(); err != nil {
		return err
	}
	if _, err := s.init(ctx); err != nil {
		return err
	}
	args := []any{k.Namespace, k.ID, l.Owner.Token}
	if s.dialect == Postgres {
		args = append(args, s.channel, keyPayload(k))
	}
	if _, err := s.exec(ctx, s.q.release, args...); err != nil {
		return err
	}
	s.hub.kick(k, false)
	return nil
}

// Leases lists the namespace's unexpired leases, by the server's clock.
func (s *Store) Leases(ctx context.Context, namespace string) iter.Seq2[store.Lease, error] {
	return pages(ctx, s, namespace, s.q.leasesPage, func(r *sql.Rows) (store.Lease, string, error) {
		var l store.Lease
		var pid, exp int64
		if err := r.Scan(&l.Key.ID, &l.Owner.Host, &pid, &l.Owner.Token, &exp); err != nil {
			return l, "", err
		}
		l.Key.Namespace, l.Owner.PID, l.ExpiresAt = namespace, int(pid), fromMicros(exp)
		return l, l.Key.ID, nil
	})
}

// ReleaseAll deletes every lease row of the namespace, expired ones included, and
// returns how many it deleted.
func (s *Store) ReleaseAll(ctx context.Context, namespace string) (int, error) {
	if err := store.ValidateNamespace(namespace); err != nil {
		return 0, err
	}
	if _, err := s.init(ctx); err != nil {
		return 0, err
	}
	args := []any{namespace}
	if s.dialect == Postgres {
		args = append(args, s.channel, nsPayload(namespace))
	}
	n, err := s.countAndNotify(ctx, s.q.releaseAll, args...)
	if err != nil {
		return 0, err
	}
	s.hub.kick(store.Key{Namespace: namespace}, true)
	return n, nil
}
