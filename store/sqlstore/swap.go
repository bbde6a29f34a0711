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
		n, err := s.changed(ctx, s.q.create, s.notifyArgs(entryArgs(k, *next), k)...)
		return n > 0, tooLarge(err, *next)
	case next == nil:
		n, err := s.changed(ctx, s.q.deleteIf, s.notifyArgs([]any{k.Namespace, k.ID, old}, k)...)
		return n > 0, err
	}
	a := entryArgs(k, *next)
	n, err := s.changed(ctx, s.q.replace, s.notifyArgs([]any{a[2], a[3], a[4], k.Namespace, k.ID, old}, k)...)
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

// maxRaces bounds how often GetAndCreate runs again because rk changed between its
// insert and its read.
const maxRaces = 8

// GetAndCreate implements store.ReadOrAcquirer. On PostgreSQL it is one statement, one
// round trip: a data-modifying WITH that inserts rec at rk unless a row is there
// (notifying rk's watchers if it did), and a UNION ALL of primary-key reads of k, rk
// and the keys of also. On MySQL and SQLite it is two statements, two round trips: the
// insert, then the reads. Either way the insert comes first, so an entry written by
// the previous holder of rk before it let go is seen.
//
// When rk was there, Cur is its value as read; if rk went away between the insert and
// the read (or, on PostgreSQL, was created by another session after the statement's
// snapshot), the call runs again.
func (s *Store) GetAndCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	ins := s.notifyArgs(entryArgs(rk, rec), rk)
	var b strings.Builder
	var args []any
	if s.dialect == Postgres {
		// $1-$5 the insert, $6-$7 its notification; rk is read with $1 and $2.
		b.WriteString(`WITH c AS (` + s.q.rawCreate + ` RETURNING 1) SELECT -1, (SELECT count(x) FROM (SELECT pg_notify($6, $7)::text AS x FROM c) n), NULL::bytea, NULL::bigint`)
		b.WriteString(` UNION ALL `)
		fmt.Fprintf(&b, s.q.readRow, tagRec, "$1", "$2")
		args = ins
	} else {
		args = s.selectKeys(&b, args, tagRec, []store.Key{rk})
	}
	args = s.selectKeys(&b, args, tagKey, []store.Key{k})
	args = s.selectKeys(&b, args, tagAlso, also)
	query := b.String()

	for range maxRaces {
		created := false
		if s.dialect != Postgres {
			n, err := s.changed(ctx, s.q.create, ins...)
			if err != nil {
				return store.GetAndCreateResult{}, tooLarge(err, rec)
			}
			created = n > 0
		}
		rows, err := read(ctx, s, query, args, scanRows)
		if err != nil {
			return store.GetAndCreateResult{}, err
		}
		res := store.GetAndCreateResult{
			GetErr: fmt.Errorf("%w: %s", store.ErrNotFound, k),
			Also:   make([][]byte, len(also)),
		}
		for _, r := range rows {
			switch {
			case r.tag == tagFlags:
				created = r.at.Int64 > 0
			case r.tag == tagKey:
				res.Entry, res.GetErr = entry(k, r.at, r.v, r.exp)
			case r.tag == tagRec:
				res.Cur = value(r.v)
			default:
				res.Also[r.tag-tagAlso] = value(r.v)
			}
		}
		if created {
			res.Created, res.Cur = true, bytes.Clone(rec.Value)
			if res.Cur == nil {
				res.Cur = []byte{}
			}
			return res, nil
		}
		if res.Cur != nil {
			return res, nil
		}
	}
	return store.GetAndCreateResult{}, fmt.Errorf("sqlstore: %s kept changing under GetAndCreate", rk)
}

// The SQL store is not a store.GetOrCreator (a first read that takes the lease only
// when there is no entry). With one, every caller's first read would take the lease on
// a miss, and under READ COMMITTED (PostgreSQL) or a read before the insert (MySQL,
// SQLite) that read can miss an entry committed together with the lease's release while
// it ran, take the freed lease and compute a second time (CI saw it:
// TestStampedeAcrossProcesses/postgres, 2 computations). Redis scripts are atomic and
// keep the two-round-trip miss; SQL keeps the lookup, then GetAndCreate under the
// single flight. A second statement with a fresh snapshot in the same pipeline would
// close the race.

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

// SetAndDelete implements store.WriteAndReleaser. On PostgreSQL it is one statement,
// one round trip: a data-modifying WITH holding the upsert of e at k and the DELETE of
// rk where its value is old (each notifying its watchers), and a UNION ALL of
// primary-key reads of also. Those reads see the database as of the statement's start,
// before its own writes commit, like any PostgreSQL statement. On MySQL and SQLite it is
// up to three statements, one after the other: the upsert, the delete (none when old
// is nil) and the reads (none when also is empty).
func (s *Store) SetAndDelete(ctx context.Context, k store.Key, e store.Entry, rk store.Key, old []byte, also []store.Key) (bool, [][]byte, error) {
	vals := make([][]byte, len(also))
	if s.dialect != Postgres {
		if err := s.Set(ctx, k, e); err != nil {
			return false, nil, err
		}
		deleted := false
		if old != nil {
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
	args := append(s.notifyArgs(entryArgs(k, e), k), rk.Namespace, rk.ID, old, keyPayload(rk))
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
