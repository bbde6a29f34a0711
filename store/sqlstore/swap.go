package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/cachier-go/cachier/store"
)

// Swap implements store.Swapper with one statement: create-if-absent is an INSERT … ON
// CONFLICT DO NOTHING (ON DUPLICATE KEY UPDATE id = id on MySQL), compare-and-swap an
// UPDATE … WHERE value = old, delete-if a DELETE … WHERE value = old. The primary key
// and the row lock make each atomic across every process that shares the table.
// next's ExpiresAt is stored like Set's. On PostgreSQL a Swap that changed the row
// notifies its watchers in the same statement.
func (s *Store) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	switch {
	case old == nil && next == nil: // "k has no entry": nothing to write
		_, err := s.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrCorrupt) {
			return true, nil
		}
		return false, err
	case old == nil:
		n, err := s.changed(ctx, s.q.create, s.notifyArgs(ctx, entryArgs(k, *next), k)...)
		return n > 0, tooLarge(err, *next)
	case next == nil:
		n, err := s.changed(ctx, s.q.deleteIf, s.notifyArgs(ctx, []any{k.Namespace, k.ID, old}, k)...)
		return n > 0, err
	}
	a := entryArgs(k, *next)
	n, err := s.changed(ctx, s.q.replace, s.notifyArgs(ctx, []any{a[2], a[3], a[4], k.Namespace, k.ID, old}, k)...)
	if err != nil {
		return false, tooLarge(err, *next)
	}
	if n == 0 && s.dialect == MySQL && bytes.Equal(old, next.Value) {
		// MySQL counts the rows an UPDATE changed, not those it matched: writing a row
		// over itself reports 0. Whether the value was old decides.
		e, err := s.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil && bytes.Equal(e.Value, old), err
	}
	return n > 0, nil
}

// row is one row of a multi-key read: which key (its tag) and its columns.
type row struct {
	tag int
	at  sql.NullInt64
	v   sql.Null[[]byte]
	exp sql.NullInt64
}

// selectKeys appends to b one SELECT per key, joined by UNION ALL, each tagged with
// firstTag+i, and their parameters to args. PostgreSQL placeholders are numbered from
// len(args)+1.
func (s *Store) selectKeys(b *strings.Builder, args []any, firstTag int, ks []store.Key) []any {
	for i, k := range ks {
		if b.Len() > 0 {
			b.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(b, s.q.readRow, firstTag+i, s.dialect.ph(len(args)+1), s.dialect.ph(len(args)+2))
		args = append(args, k.Namespace, k.ID)
	}
	return args
}

// scanRows reads every row of a multi-key read.
func scanRows(r *sql.Rows) ([]row, error) {
	var out []row
	for r.Next() {
		var x row
		var tag int64
		if err := r.Scan(&tag, &x.at, &x.v, &x.exp); err != nil {
			return nil, err
		}
		x.tag = int(tag)
		out = append(out, x)
	}
	return out, nil
}

// Tags of the rows of GetAndCreate and SetAndDelete: the flags row, k, rk, then the
// keys of also.
const (
	tagFlags = -1
	tagKey   = 0
	tagRec   = 1
	tagAlso  = 2
)

// maxRaces bounds how often GetAndCreate and GetOrCreate run again because rk or k
// changed between their insert and their read.
const maxRaces = 8

// GetAndCreate implements store.ReadOrAcquirer. It is GetOrCreate's two statements
// with the insert made unconditional: the insert of rec at rk unless a row is there
// (notifying rk's watchers on PostgreSQL if it did), then the primary-key reads of rk,
// k and the keys of also, each statement with its own snapshot (GetOrCreate says why
// that matters): in one round trip with Options.Pipeline on PostgreSQL, else one after
// the other. (One PostgreSQL statement holding both, a data-modifying WITH, would read
// from a snapshot taken before its insert waited on rk's row lock, and miss an entry
// committed together with rk's release: TestClaimSeesEntryCommittedWithRelease.)
//
// When rk was there, Cur is its value as read; if rk went away between the insert and
// the read, the call runs again.
func (s *Store) GetAndCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	return s.createThenRead(ctx, k, also, rk, rec, false)
}

// Pipeliner sends several statements to PostgreSQL in one round trip (Options.Pipeline).
// Package pgxpipe implements it with pgx; this package cannot, because it imports no
// driver.
type Pipeliner interface {
	// Pipeline runs queries[i] with the parameters args[i] on driverConn (the
	// driver's connection, as database/sql's Conn.Raw hands it over), in order,
	// sending them all before it reads any result, and returns the rows of each: a
	// row is its column values as the driver decodes them (int64 or int32, []byte,
	// nil for NULL). Each statement must run after the one before it finished, with
	// a snapshot of its own (PostgreSQL's default READ COMMITTED gives every
	// statement one, in or out of a transaction). When driverConn is not a
	// connection it can use, it sends nothing and returns an error matching
	// errors.ErrUnsupported; the store then sends the statements one at a time.
	Pipeline(ctx context.Context, driverConn any, queries []string, args [][]any) ([][][]any, error)
}

// GetsOrCreates implements store.MaybeGetOrCreator: the portable layer uses
// GetOrCreate on PostgreSQL with Options.Pipeline, where it is one round trip. On
// MySQL and SQLite (and on PostgreSQL without one) it is two, and a hit would cost
// two where a Get costs one.
func (s *Store) GetsOrCreates() bool { return s.pipe != nil }

// GetOrCreate implements store.GetOrCreator. It is two statements, in this order: the
// insert of rec at rk unless a row is there or k holds a live entry (expires_at NULL
// or after rec.StoredAt), then the primary-key reads of rk, k and the keys of also.
// With Options.Pipeline (PostgreSQL) both go in one round trip; otherwise they are
// sent one after the other (two round trips, which is why GetsOrCreates is false
// there). A hit writes nothing: an entry committed before the call started is in the
// insert's snapshot, and its condition fails.
//
// Why two statements, the insert first (issue #11). The holder of rk stores its result
// and deletes rk in one transaction (SetAndDelete). One statement that inserts rk and
// reads k sees the database as of its start, and when that transaction commits while
// the statement runs, its insert, which waited on rk's row lock, goes in once rk is
// deleted, while its read, from the older snapshot, misses the entry committed with
// that delete: the caller takes the lease and computes a second time (CI saw it:
// TestStampedeAcrossProcesses/postgres, 2 computations). With the insert first and the
// read a statement of its own:
//
//   - If the insert created rec, no live rk was there: on PostgreSQL an INSERT … ON
//     CONFLICT DO NOTHING goes in over a row it conflicts with only once that row's
//     delete has committed (while the deleting transaction runs, the insert waits
//     for it), and on MySQL (InnoDB) the insert waits on the row's lock likewise. So
//     whoever deleted an earlier rk committed before the insert finished, and the read,
//     a later statement (on any connection) whose snapshot is taken after the insert
//     finished, sees that commit and the entry written with it. Such an entry
//     comes back with Created: the caller uses the entry and releases the lease, which
//     costs a round trip only in this rare case (cachier's lookupFirst does so).
//   - If the insert created nothing, it wrote nothing, and the read reports the entry
//     or rk as of a moment after the insert; when it finds neither (both went away in
//     between), the two statements run again.
//
// This needs the read to take a snapshot of its own, after the insert: sent one after
// the other, each statement is a transaction of its own (autocommit), at any isolation
// level. pgxpipe sends the two in one implicit transaction, where only PostgreSQL's
// READ COMMITTED (its default) gives each statement its own snapshot; the insert
// reports the level it ran under, and under another (a default_transaction_isolation
// of REPEATABLE READ, say) the store reads again, one round trip more, and logs it
// once. On SQLite the two run in one transaction (see sqlitetx.go): it begins with
// the insert, which takes SQLite's one write lock, so the read sees every commit made
// before it.
//
// Concurrent GetOrCreates of one key in the process share their statements, as Gets
// share a SELECT (see reads): a stampede's 64 first reads in a process are a couple of
// round trips, not 64 inserts queued on the pool and on rk's row lock. The calls that
// arrive while one is in flight share the next, which begins after all of them
// arrived; it creates the record of one of them, and the others learn, as from a call
// of their own made just after it, that the record is there (Created false, Cur that
// record): they never take the lease, and an entry it reads was read after they were
// called.
func (s *Store) GetOrCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	ck := claimKey{k: k, rk: rk}
	if len(also) > 0 {
		var b strings.Builder
		for _, a := range also {
			b.WriteString(keyPayload(a))
		}
		ck.also = b.String()
	}
	return s.sharedClaim(ctx, ck, func(ctx context.Context) (store.GetAndCreateResult, error) {
		return s.createThenRead(ctx, k, also, rk, rec, true)
	})
}

// sharedClaim runs fetch, GetOrCreate's statements, shared with the concurrent
// GetOrCreates of ck.
func (s *Store) sharedClaim(ctx context.Context, ck claimKey, fetch func(context.Context) (store.GetAndCreateResult, error)) (store.GetAndCreateResult, error) {
	return s.claims.do(ctx, ck, fetch, shareClaim)
}

// claimKey is what concurrent GetOrCreates must agree on to share their statements.
type claimKey struct {
	k, rk store.Key
	also  string // the keys of also, each as its notification payload
}

// shareClaim is the result of a GetOrCreate shared with a caller that joined it: the
// record created, if any, is not that caller's.
func shareClaim(r store.GetAndCreateResult) store.GetAndCreateResult {
	r.Created = false
	r.Entry.Value = bytes.Clone(r.Entry.Value)
	r.Cur = bytes.Clone(r.Cur)
	also := make([][]byte, len(r.Also))
	for i, v := range r.Also {
		also[i] = bytes.Clone(v)
	}
	r.Also = also
	return r
}

// createThenRead is GetOrCreate when ifMissing, else GetAndCreate, as two statements:
// the insert, then the reads.
func (s *Store) createThenRead(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry, ifMissing bool) (store.GetAndCreateResult, error) {
	ins := entryArgs(rk, rec)
	var create string
	switch {
	case s.dialect == Postgres:
		// One row: how many records it created (0 or 1), notifying rk's watchers if
		// one. $1-$5 the record, $6-$7 the notification, $8-$9 k.
		insert := s.q.rawCreate
		if ifMissing {
			insert = s.createIfMissing("$8", "$9")
			ins = append(s.notifyArgs(ctx, ins, rk), k.Namespace, k.ID)
		} else {
			ins = s.notifyArgs(ctx, ins, rk)
		}
		// The second column is the isolation level the statement ran under: see
		// pipelined.
		create = `WITH c AS (` + insert + ` RETURNING 1) SELECT count(x), current_setting('transaction_isolation') FROM (SELECT pg_notify($6, $7)::text AS x FROM c) n`
	case ifMissing:
		create = s.createIfMissing(s.dialect.ph(6), s.dialect.ph(7))
		ins = append(ins, k.Namespace, k.ID, micros(rec.StoredAt))
	default:
		create = s.q.create
	}
	var b strings.Builder
	args := s.selectKeys(&b, nil, tagRec, []store.Key{rk})
	args = s.selectKeys(&b, args, tagKey, []store.Key{k})
	args = s.selectKeys(&b, args, tagAlso, also)
	reads := b.String()
	now := micros(rec.StoredAt)

	for range maxRaces {
		created, rows, err := s.insertThenRead(ctx, create, ins, reads, args)
		if err != nil {
			return store.GetAndCreateResult{}, tooLarge(err, rec)
		}
		res := store.GetAndCreateResult{
			GetErr: fmt.Errorf("%w: %s", store.ErrNotFound, k),
			Also:   make([][]byte, len(also)),
		}
		live := false
		for _, r := range rows {
			switch {
			case r.tag == tagKey:
				res.Entry, res.GetErr = entry(k, r.at, r.v, r.exp)
				live = !r.exp.Valid || r.exp.Int64 > now
			case r.tag == tagRec:
				res.Cur = value(r.v)
			default:
				res.Also[r.tag-tagAlso] = value(r.v)
			}
		}
		switch {
		case created:
			res.Created, res.Cur = true, bytes.Clone(rec.Value)
			if res.Cur == nil {
				res.Cur = []byte{}
			}
			return res, nil
		case res.Cur != nil, ifMissing && live:
			return res, nil
		}
		// Not created, though neither rk nor (for GetOrCreate) a live k was there
		// when read: one of them went away meanwhile. Again.
	}
	op := "GetAndCreate"
	if ifMissing {
		op = "GetOrCreate"
	}
	return store.GetAndCreateResult{}, fmt.Errorf("sqlstore: %s kept changing under %s", rk, op)
}

// insertThenRead runs create (whose rows, on PostgreSQL, are one count of the records
// it created; elsewhere its affected rows count them), then reads: in one round trip
// with a Pipeliner, else one after the other.
func (s *Store) insertThenRead(ctx context.Context, create string, cargs []any, reads string, rargs []any) (created bool, rows []row, err error) {
	if s.pipe != nil {
		created, rows, err = s.pipelined(ctx, create, cargs, reads, rargs)
		if !errors.Is(err, errors.ErrUnsupported) {
			return created, rows, err
		}
	}

	if s.dialect == SQLite {
		return s.insertThenReadTx(ctx, create, cargs, reads, rargs)
	}
	if s.dialect == Postgres {
		n, err := read(ctx, s, create, cargs, func(r *sql.Rows) (int64, error) {
			var n int64
			var isolation string // each statement is a transaction of its own: any level will do
			for r.Next() {
				if err := r.Scan(&n, &isolation); err != nil {
					return 0, err
				}
			}
			return n, nil
		})
		if err != nil {
			return false, nil, err
		}
		created = n > 0
	} else {
		n, err := s.changed(ctx, create, cargs...)
		if err != nil {
			return false, nil, err
		}
		created = n > 0
	}
	rows, err = read(ctx, s, reads, rargs, scanRows)
	return created, rows, err
}

// pipelined is insertThenRead through the Pipeliner, on one connection of the pool.
func (s *Store) pipelined(ctx context.Context, create string, cargs []any, reads string, rargs []any) (bool, []row, error) {
	if err := s.init(ctx); err != nil {
		return false, nil, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return false, nil, err
	}
	defer conn.Close()
	var res [][][]any
	err = conn.Raw(func(dc any) error {
		var err error
		res, err = s.pipe.Pipeline(ctx, dc, []string{create, reads}, [][]any{cargs, rargs})
		return err
	})
	if err != nil {
		return false, nil, err
	}
	if len(res) != 2 || len(res[0]) != 1 || len(res[0][0]) != 2 {
		return false, nil, fmt.Errorf("sqlstore: the pipeline returned %d results, want 2 and one count", len(res))
	}
	n, err := nullInt(res[0][0][0])
	if err != nil {
		return false, nil, fmt.Errorf("sqlstore: the pipeline's count: %w", err)
	}
	if iso, _ := res[0][0][1].(string); iso != "read committed" {
		// The two statements ran in one transaction whose snapshot the read shares
		// with the insert (REPEATABLE READ or SERIALIZABLE: a session or database
		// default other than PostgreSQL's), so the read may predate a release the
		// insert waited for. Read again, a transaction of its own begun after the
		// insert's: a round trip more, but never a second computation.
		s.isoOnce.Do(func() {
			s.log.Warn("sqlstore: the session's isolation level is not READ COMMITTED: a pipelined miss reads twice (set default_transaction_isolation to read committed for two round trips per miss)",
				"table", s.table, "isolation", iso)
		})
		rows, err := read(ctx, s, reads, rargs, scanRows)
		return n.Int64 > 0, rows, err
	}
	rows := make([]row, len(res[1]))
	for i, vals := range res[1] {
		if rows[i], err = rowOf(vals); err != nil {
			return false, nil, err
		}
	}
	return n.Int64 > 0, rows, nil
}

// rowOf makes a row of a multi-key read of the column values a Pipeliner returned.
func rowOf(vals []any) (row, error) {
	var r row
	if len(vals) != 4 {
		return r, fmt.Errorf("sqlstore: a row of %d columns, want 4", len(vals))
	}
	tag, err := nullInt(vals[0])
	if err != nil || !tag.Valid {
		return r, fmt.Errorf("sqlstore: a row's tag %v: %v", vals[0], err)
	}
	r.tag = int(tag.Int64)
	if r.at, err = nullInt(vals[1]); err != nil {
		return r, err
	}
	if r.exp, err = nullInt(vals[3]); err != nil {
		return r, err
	}
	switch v := vals[2].(type) {
	case nil:
	case []byte:
		r.v = sql.Null[[]byte]{V: v, Valid: true}
	default:
		return r, fmt.Errorf("sqlstore: a value of type %T, want []byte", vals[2])
	}
	return r, nil
}

// nullInt is an integer column value as a Pipeliner returned it.
func nullInt(v any) (sql.NullInt64, error) {
	switch x := v.(type) {
	case nil:
		return sql.NullInt64{}, nil
	case int64:
		return sql.NullInt64{Int64: x, Valid: true}, nil
	case int32:
		return sql.NullInt64{Int64: int64(x), Valid: true}, nil
	}
	return sql.NullInt64{}, fmt.Errorf("sqlstore: an integer column of type %T", v)
}

// createIfMissing is the INSERT of a record at rk unless a row is there, or the entry
// at k is live: a row whose expires_at is NULL or after the record's stored_at. The
// record's five columns are its parameters 1-5; k is kn and kid. On PostgreSQL the
// parameters are cast, as a SELECT list gives them no type of its own.
func (s *Store) createIfMissing(kn, kid string) string {
	e := s.dialect.quote(s.table)
	p := s.dialect.ph
	vals := p(1) + `, ` + p(2) + `, ` + p(3) + `, ` + p(4) + `, ` + p(5)
	from := ``
	at := p(3)
	switch s.dialect {
	case Postgres:
		vals = `$1::text, $2::text, $3::bigint, $4::bytea, $5::bigint`
		at = `$3::bigint`
	case MySQL:
		from = ` FROM DUAL`
	}
	q := `INSERT INTO ` + e + ` (namespace, id, stored_at, value, expires_at) SELECT ` + vals + from +
		` WHERE NOT EXISTS (SELECT 1 FROM ` + e + ` WHERE namespace = ` + kn + ` AND id = ` + kid +
		` AND (expires_at IS NULL OR expires_at > ` + at + `))`
	if s.dialect == MySQL {
		return q + ` ON DUPLICATE KEY UPDATE id = id`
	}
	return q + ` ON CONFLICT (namespace, id) DO NOTHING`
}

// value is a record's value: nil for no row, never nil for a row.
func value(v sql.Null[[]byte]) []byte {
	if !v.Valid {
		return nil
	}
	if v.V == nil {
		return []byte{}
	}
	return v.V
}

// deleteReading is, on MariaDB, the delete of rk where its value is old and the read of
// the keys of also in one statement: a DELETE … RETURNING whose columns are a
// primary-key read of each key, one row for the row it deleted. It returns how many
// rows it deleted (0 or 1) and, when 1, has put the values of also, as read after the
// statement that precedes it (SetAndDelete's upsert) committed, in vals. A cachier
// miss on MariaDB costs a statement less: the upsert, then this (was: the upsert, the
// delete, the reads). PostgreSQL's SetAndDelete reads them in its one statement too.
func (s *Store) deleteReading(ctx context.Context, rk store.Key, old []byte, also []store.Key, vals [][]byte) (int, error) {
	e := s.dialect.quote(s.table)
	var b strings.Builder
	b.WriteString(s.q.deleteIf + ` RETURNING `)
	args := []any{rk.Namespace, rk.ID, old}
	for i, k := range also {
		if i > 0 {
			b.WriteString(`, `)
		}
		b.WriteString(`(SELECT value FROM ` + e + ` WHERE namespace = ? AND id = ?)`)
		args = append(args, k.Namespace, k.ID)
	}
	return read(ctx, s, b.String(), args, func(r *sql.Rows) (int, error) {
		n := 0
		cols := make([]sql.Null[[]byte], len(also))
		dest := make([]any, len(also))
		for i := range cols {
			dest[i] = &cols[i]
		}
		for r.Next() {
			if err := r.Scan(dest...); err != nil {
				return 0, err
			}
			for i, v := range cols {
				vals[i] = value(v)
			}
			n++
		}
		return n, nil
	})
}

// SetAndDelete implements store.WriteAndReleaser. On PostgreSQL it is one statement,
// one round trip: a data-modifying WITH holding the upsert of e at k and the DELETE of
// rk where its value is old (each notifying its watchers), and a UNION ALL of
// primary-key reads of also. Those reads see the database as of the statement's start,
// before its own writes commit, like any PostgreSQL statement. On MySQL and SQLite it is
// up to three statements, one after the other: the upsert, the delete (none when old
// is nil) and the reads (none when also is empty); on SQLite in one transaction, one
// commit; on MariaDB the delete that deletes a row reads them (deleteReading), two
// statements.
func (s *Store) SetAndDelete(ctx context.Context, k store.Key, e store.Entry, rk store.Key, old []byte, also []store.Key) (bool, [][]byte, error) {
	vals := make([][]byte, len(also))
	if s.dialect == SQLite {
		return s.setAndDeleteTx(ctx, k, e, rk, old, also)
	}
	if s.dialect != Postgres {
		if err := s.Set(ctx, k, e); err != nil {
			return false, nil, err
		}
		deleted := false
		switch {
		case old != nil && len(also) > 0 && s.returning:
			n, err := s.deleteReading(ctx, rk, old, also, vals)
			if err != nil {
				return false, nil, err
			}
			if n > 0 {
				return true, vals, nil
			}
			// Nothing deleted, so no row came back with the counters: read them.
		case old != nil:
			n, err := s.changed(ctx, s.q.deleteIf, rk.Namespace, rk.ID, old)
			if err != nil {
				return false, nil, err
			}
			deleted = n > 0
		}
		if len(also) == 0 {
			return deleted, vals, nil
		}
		var b strings.Builder
		args := s.selectKeys(&b, nil, tagAlso, also)
		rows, err := read(ctx, s, b.String(), args, scanRows)
		if err != nil {
			return false, nil, err
		}
		for _, r := range rows {
			vals[r.tag-tagAlso] = value(r.v)
		}
		return deleted, vals, nil
	}

	// $1-$5 the upsert, $6-$7 its notification, $8-$10 the delete, $11 its payload.
	var b strings.Builder
	b.WriteString(`WITH s AS (` + s.q.rawSet + ` RETURNING 1), d AS (DELETE FROM ` + s.dialect.quote(s.table) +
		` WHERE namespace = $8 AND id = $9 AND value = $10 RETURNING 1)` +
		` SELECT -1, (SELECT count(x) FROM (SELECT pg_notify($6, $7)::text AS x FROM s) n),` +
		` NULL::bytea, (SELECT count(x) FROM (SELECT pg_notify($6, $11)::text AS x FROM d) m)`)
	args := append(s.notifyArgs(ctx, entryArgs(k, e), k), rk.Namespace, rk.ID, old, keyPayload(rk))
	args = s.selectKeys(&b, args, tagAlso, also)
	rows, err := read(ctx, s, b.String(), args, scanRows)
	if err != nil {
		return false, nil, tooLarge(err, e)
	}
	deleted := false
	for _, r := range rows {
		if r.tag == tagFlags {
			deleted = r.exp.Int64 > 0
			continue
		}
		vals[r.tag-tagAlso] = value(r.v)
	}
	return deleted, vals, nil
}
