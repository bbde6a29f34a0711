package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"

	"github.com/cachier-go/cachier/store"
)

var (
	_ store.Versioner       = (*Store)(nil)
	_ store.VersionedGetter = (*Store)(nil)
)

const (
	// maxCountersPerQuery bounds the counters one statement reads (one scalar
	// subquery, one column and one parameter each), well within every dialect's
	// limits on columns and parameters. Versions reads more in several statements.
	maxCountersPerQuery = 200
	// maxPreparedCounters is the largest number of counters whose statements are
	// prepared and kept; statements for more counters are sent unprepared.
	maxPreparedCounters = 16
)

// validateCounters checks each name with store.ValidateCounter. Names travel as
// parameters, so no character needs escaping.
func validateCounters(names []string) error {
	for _, n := range names {
		if err := store.ValidateCounter(n); err != nil {
			return err
		}
	}
	return nil
}

// Versions returns the current value of each named counter (0 for one never bumped)
// with one statement of scalar subqueries, one per counter, each a primary-key
// lookup in the versions table:
//
//	SELECT (SELECT version FROM cachier_versions WHERE name = $1), (SELECT ...), ...
func (s *Store) Versions(ctx context.Context, names []string) ([]uint64, error) {
	if err := validateCounters(names); err != nil {
		return nil, err
	}
	if _, err := s.init(ctx); err != nil {
		return nil, err
	}
	out := make([]uint64, 0, len(names))
	for chunk := range chunks(names, maxCountersPerQuery) {
		vs, err := retry(ctx, s, func() ([]uint64, error) {
			rows, err := s.queryCounters(ctx, false, chunk)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			if !rows.Next() {
				if err := rows.Err(); err != nil {
					return nil, err
				}
				return nil, errors.New("sqlstore: versions: no row")
			}
			vs := make([]sql.NullInt64, len(chunk))
			dest := make([]any, len(chunk))
			for i := range vs {
				dest[i] = &vs[i]
			}
			if err := rows.Scan(dest...); err != nil {
				return nil, fmt.Errorf("sqlstore: versions: %w", err)
			}
			return fromNulls(vs), rows.Close()
		})
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	return out, nil
}

// Bump sets the named counter to a fresh random non-zero value with one upsert
// (INSERT … ON CONFLICT DO UPDATE, or ON DUPLICATE KEY UPDATE on MySQL) and returns
// it. Concurrent bumps may overwrite each other; each leaves a value no entry has
// recorded.
func (s *Store) Bump(ctx context.Context, name string) (uint64, error) {
	if err := store.ValidateCounter(name); err != nil {
		return 0, err
	}
	if _, err := s.init(ctx); err != nil {
		return 0, err
	}
	v := store.NewVersion()
	if _, err := s.exec(ctx, s.q.bump, name, int64(v)); err != nil {
		return 0, err
	}
	return v, nil
}

// GetVersioned returns the entry for k and the current value of each named counter
// with one statement: Get's primary-key SELECT with one scalar subquery per counter
// added to its select list, so a hit on a tagged entry costs one round trip. A miss
// returns no row, hence store.ErrNotFound and no versions. More than
// maxCountersPerQuery counters take a Get and a Versions.
func (s *Store) GetVersioned(ctx context.Context, k store.Key, names []string) (store.Entry, []uint64, error) {
	if len(names) == 0 || len(names) > maxCountersPerQuery {
		e, err := s.Get(ctx, k)
		if err != nil {
			return store.Entry{}, nil, err
		}
		vs, err := s.Versions(ctx, names)
		if err != nil {
			return store.Entry{}, nil, err
		}
		return e, vs, nil
	}
	if err := k.Validate(); err != nil {
		return store.Entry{}, nil, err
	}
	if err := validateCounters(names); err != nil {
		return store.Entry{}, nil, err
	}
	if _, err := s.init(ctx); err != nil {
		return store.Entry{}, nil, err
	}
	type result struct {
		e  store.Entry
		vs []uint64
	}
	r, err := retry(ctx, s, func() (result, error) {
		rows, err := s.queryCounters(ctx, true, names, k.Namespace, k.ID)
		if err != nil {
			return result{}, err
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return result{}, err
			}
			return result{}, fmt.Errorf("%w: %s", store.ErrNotFound, k)
		}
		var at, exp sql.NullInt64
		var v sql.Null[[]byte]
		vs := make([]sql.NullInt64, len(names))
		dest := make([]any, 3, 3+len(names))
		dest[0], dest[1], dest[2] = &at, &v, &exp
		for i := range vs {
			dest = append(dest, &vs[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return result{}, corrupt(k, err)
		}
		if !at.Valid || !v.Valid {
			return result{}, corrupt(k, errors.New("NULL column"))
		}
		if v.V == nil {
			v.V = []byte{}
		}
		return result{store.Entry{Value: v.V, StoredAt: fromMicros(at.Int64), ExpiresAt: fromNullMicros(exp)}, fromNulls(vs)}, rows.Close()
	})
	if err != nil {
		return store.Entry{}, nil, err
	}
	return r.e, r.vs, nil
}

// queryCounters runs the statement reading names' counters: Versions' if withEntry is
// false, GetVersioned's (keyArgs are then namespace and id) if true. Statements for up
// to maxPreparedCounters counters are prepared once and kept.
func (s *Store) queryCounters(ctx context.Context, withEntry bool, names []string, keyArgs ...any) (*sql.Rows, error) {
	// PostgreSQL numbers its placeholders: the key is $1 and $2 (getFrom), the
	// counters follow. The others bind ? in order of appearance: counters first.
	args := make([]any, 0, len(keyArgs)+len(names))
	if s.dialect == Postgres {
		args = append(args, keyArgs...)
	}
	for _, n := range names {
		args = append(args, n)
	}
	if s.dialect != Postgres {
		args = append(args, keyArgs...)
	}
	build := func() string { return s.countersQuery(withEntry, len(names)) }
	if len(names) > maxPreparedCounters {
		return s.db.QueryContext(ctx, build(), args...)
	}
	st, err := s.vstmts.get(ctx, s, stmtKey{withEntry, len(names)}, build)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// countersQuery writes the statement for n counters.
func (s *Store) countersQuery(withEntry bool, n int) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	first := 1
	if withEntry {
		b.WriteString("stored_at, value, expires_at, ")
		first = 3
	}
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, s.q.versionOf, s.dialect.ph(first+i))
	}
	if withEntry {
		b.WriteString(s.q.getFrom)
	}
	return b.String()
}

// stmtKey names a prepared statement of queryCounters.
type stmtKey struct {
	withEntry bool
	n         int
}

// versionStmts keeps the prepared statements of Versions and GetVersioned, one per
// number of counters, prepared on first use and closed by Store.Close.
type versionStmts struct {
	mu     sync.Mutex
	closed bool
	m      map[stmtKey]*sql.Stmt
}

func (v *versionStmts) get(ctx context.Context, s *Store, k stmtKey, build func() string) (*sql.Stmt, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, errClosed
	}
	if st := v.m[k]; st != nil {
		return st, nil
	}
	st, err := retry(ctx, s, func() (*sql.Stmt, error) { return s.db.PrepareContext(ctx, build()) })
	if err != nil {
		return nil, fmt.Errorf("sqlstore: prepare: %w", err)
	}
	if v.m == nil {
		v.m = map[stmtKey]*sql.Stmt{}
	}
	v.m[k] = st
	return st, nil
}

// close closes every statement; later gets fail with errClosed.
func (v *versionStmts) close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	var err error
	for _, st := range v.m {
		err = errors.Join(err, st.Close())
	}
	v.m = nil
	return err
}

// chunks yields s in consecutive pieces of at most n elements, none for an empty s.
func chunks[T any](s []T, n int) iter.Seq[[]T] {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			m := min(n, len(s))
			if !yield(s[:m]) {
				return
			}
			s = s[m:]
		}
	}
}

// fromNulls converts counters read from the database: NULL (no row) is 0, and the
// signed column holds the uint64 bit for bit.
func fromNulls(vs []sql.NullInt64) []uint64 {
	out := make([]uint64, len(vs))
	for i, v := range vs {
		if v.Valid {
			out[i] = uint64(v.Int64)
		}
	}
	return out
}
