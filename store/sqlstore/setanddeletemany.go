package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/cachier-go/cachier/store"
)

var _ store.SetAndDeleteBatcher = (*Store)(nil)

// SetAndDeleteMany implements store.SetAndDeleteBatcher: a batch's computed entries
// stored, their leases given up and the counters read, with which the portable layer
// answers store.WriteReleaseBatcher (cachier's Batch, after computing).
//
//   - On PostgreSQL, one statement per maxSwapRows keys: a data-modifying WITH holding
//     the upsert of every entry, in the order given (two batches writing overlapping
//     keys in the same sorted order cannot each wait for a row the other wrote), the
//     DELETE of every record rks[i] whose value is olds[i], and the primary-key reads
//     of also (in the last statement), each change notifying its watchers. As with
//     SetAndDelete, the reads see the database as of the statement's start.
//   - On SQLite, every upsert and delete, then the reads, in one transaction.
//   - On MySQL, one multi-row upsert of every entry per maxSwapRows keys, in the
//     order given, then the deletes as SwapMany makes them (one statement on
//     MariaDB), then the reads.
//   - Otherwise, SetAndDelete one key at a time, in order, then the reads.
//
// A batch that names a record twice (or, on PostgreSQL, a key twice) runs as the
// last case.
func (s *Store) SetAndDeleteMany(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key) ([]bool, []error, [][]byte, error) {
	if len(ks) != len(es) || len(ks) != len(rks) || len(ks) != len(olds) {
		return nil, nil, nil, fmt.Errorf("sqlstore: SetAndDeleteMany of %d keys, %d entries, %d records and %d old values; pass one of each per key", len(ks), len(es), len(rks), len(olds))
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	if len(ks) == 0 {
		return []bool{}, []error{}, nil, nil // no write sent: nothing read either
	}
	switch {
	case s.dialect == Postgres && distinct(ks) && distinct(rks):
		return s.setAndDeleteManyPG(ctx, ks, es, rks, olds, also)
	case s.dialect == SQLite:
		return s.setAndDeleteManyTx(ctx, ks, es, rks, olds, also)
	case s.dialect == MySQL && distinct(rks):
		return s.setAndDeleteManyMySQL(ctx, ks, es, rks, olds, also)
	}
	deleted, errs := make([]bool, len(ks)), make([]error, len(ks))
	for i, k := range ks {
		d, _, err := s.SetAndDelete(ctx, k, es[i], rks[i], olds[i], nil)
		switch {
		case errors.Is(err, store.ErrTooLarge):
			errs[i] = err
		case err != nil:
			return nil, nil, nil, err
		}
		deleted[i] = d
	}
	vals, err := s.readAlso(ctx, also)
	if err != nil {
		return nil, nil, nil, err
	}
	return deleted, errs, vals, nil
}

// readAlso reads the records of also (nil for none) with one statement.
func (s *Store) readAlso(ctx context.Context, also []store.Key) ([][]byte, error) {
	vals := make([][]byte, len(also))
	if len(also) == 0 {
		return vals, nil
	}
	var b strings.Builder
	args := s.selectKeys(&b, nil, 0, also)
	rows, err := read(ctx, s, b.String(), args, scanRows)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		vals[r.tag] = value(r.v)
	}
	return vals, nil
}

// Tags of the rows of setAndDeleteManyPG: the count of its upserts, one row per
// record it deleted; the records of also are tagged by position, from 0.
const (
	tagUpserts = -2
	tagDeleted = -1
)

// setAndDeleteManyPG is SetAndDeleteMany on PostgreSQL, of distinct keys and records.
func (s *Store) setAndDeleteManyPG(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key) ([]bool, []error, [][]byte, error) {
	deleted := make([]bool, len(ks))
	var vals [][]byte
	for from := 0; from < len(ks); from += maxSwapRows {
		to := min(from+maxSwapRows, len(ks))
		var reads []store.Key
		if to == len(ks) {
			reads = also
		}
		q, args := s.setAndDeleteStatement(ctx, ks, es, rks, olds, reads, from, to)
		rows, err := read(ctx, s, q, args, scanRows)
		if err != nil {
			return nil, nil, nil, tooLarge(err, largest(es[from:to]))
		}
		vals = make([][]byte, len(reads))
		for _, r := range rows {
			switch {
			case r.tag == tagUpserts:
			case r.tag == tagDeleted:
				if at := int(r.at.Int64); r.at.Valid && at >= from && at < to {
					deleted[at] = true
				}
			case r.tag >= 0 && r.tag < len(reads):
				vals[r.tag] = value(r.v)
			}
		}
	}
	return deleted, make([]error, len(ks)), vals, nil
}

// largest is the entry of es with the largest value, which an error of a batch that
// says too large is reported for.
func largest(es []store.Entry) store.Entry {
	var l store.Entry
	for _, e := range es {
		if len(e.Value) >= len(l.Value) {
			l = e
		}
	}
	return l
}

// setAndDeleteStatement is the statement of setAndDeleteManyPG for ks[from:to] and
// the reads of also, and its parameters: $1 the channel, then each entry's row (its
// payload names ctx's writer id: changePayload), each record's, and the keys of also. Its rows are scanRows': one (tagUpserts, count)
// whose subquery notifies the watchers of every entry written, one (tagDeleted,
// position) per record deleted, notifying its watchers, and the records of also.
func (s *Store) setAndDeleteStatement(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key, from, to int) (string, []any) {
	e := s.dialect.quote(s.table)
	var b strings.Builder
	args := make([]any, 1, 1+10*(to-from)+2*len(also))
	args[0] = s.channel
	b.WriteString(`WITH u (namespace, id, stored_at, value, expires_at, payload, pos) AS (VALUES `)
	for i := from; i < to; i++ {
		if i > from {
			b.WriteString(`, `)
		}
		n := len(args)
		fmt.Fprintf(&b, `($%d::text, $%d::text, $%d::bigint, $%d::bytea, $%d::bigint, $%d::text, %d)`, n+1, n+2, n+3, n+4, n+5, n+6, i)
		args = append(append(args, entryArgs(ks[i], es[i])...), s.changePayload(ctx, ks[i]))
	}
	// ORDER BY pos: the rows are written, and wait on rows other writers hold, in
	// the order given.
	b.WriteString(`), w AS (INSERT INTO ` + e + ` (namespace, id, stored_at, value, expires_at)` +
		` SELECT namespace, id, stored_at, value, expires_at FROM u ORDER BY pos` +
		` ON CONFLICT (namespace, id) DO UPDATE SET stored_at = excluded.stored_at, value = excluded.value, expires_at = excluded.expires_at` +
		` RETURNING namespace, id)`)
	dels := false
	for i := from; i < to; i++ {
		if olds[i] == nil {
			continue
		}
		if !dels {
			b.WriteString(`, r (namespace, id, value, payload, pos) AS (VALUES `)
			dels = true
		} else {
			b.WriteString(`, `)
		}
		n := len(args)
		fmt.Fprintf(&b, `($%d::text, $%d::text, $%d::bytea, $%d::text, %d)`, n+1, n+2, n+3, n+4, i)
		// Untagged, as SetAndDelete's delete: every watcher of a lease learns it is free.
		args = append(args, rks[i].Namespace, rks[i].ID, olds[i], keyPayload(rks[i]))
	}
	if dels {
		b.WriteString(`), d AS (DELETE FROM ` + e + ` t USING r WHERE t.namespace = r.namespace AND t.id = r.id AND t.value = r.value` +
			` RETURNING r.pos, r.payload)`)
	}
	fmt.Fprintf(&b, ` SELECT %d, (SELECT count(x) FROM (SELECT pg_notify($1, u.payload)::text AS x FROM w JOIN u ON w.namespace = u.namespace AND w.id = u.id) n),`+
		` NULL::bytea, NULL::bigint`, tagUpserts)
	if dels {
		fmt.Fprintf(&b, ` UNION ALL SELECT %d, d.pos::bigint, NULL::bytea, length(pg_notify($1, d.payload)::text)::bigint FROM d`, tagDeleted)
	}
	var reads strings.Builder
	args = s.selectKeys(&reads, args, 0, also)
	if reads.Len() > 0 {
		b.WriteString(` UNION ALL ` + reads.String())
	}
	return b.String(), args
}

// setAndDeleteManyTx is SetAndDeleteMany on SQLite: every upsert and delete, in
// order, then the reads, in one transaction. A value too large for SQLite fails its
// own upsert, and the others go on.
func (s *Store) setAndDeleteManyTx(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key) ([]bool, []error, [][]byte, error) {
	if err := s.init(ctx); err != nil {
		return nil, nil, nil, err
	}
	set, err := s.prepare(ctx, s.q.set, 5)
	if err != nil {
		return nil, nil, nil, err
	}
	del, err := s.prepare(ctx, s.q.deleteIf, 3)
	if err != nil {
		return nil, nil, nil, err
	}
	var b strings.Builder
	rargs := s.selectKeys(&b, nil, 0, also)
	var rd prepared
	if len(also) > 0 {
		if rd, err = s.prepare(ctx, b.String(), len(rargs)); err != nil {
			return nil, nil, nil, err
		}
	}
	type result struct {
		deleted []bool
		errs    []error
		vals    [][]byte
	}
	r, err := inTx(ctx, s, func(tx *sql.Tx) (result, error) {
		res := result{deleted: make([]bool, len(ks)), errs: make([]error, len(ks)), vals: make([][]byte, len(also))}
		for i, k := range ks {
			if _, err := txExec(ctx, tx, set, entryArgs(k, es[i])...); err != nil {
				if err := tooLarge(err, es[i]); errors.Is(err, store.ErrTooLarge) {
					res.errs[i] = err
					continue
				}
				return res, err
			}
			if olds[i] != nil {
				n, err := txExec(ctx, tx, del, rks[i].Namespace, rks[i].ID, olds[i])
				if err != nil {
					return res, err
				}
				res.deleted[i] = n > 0
			}
		}
		if len(also) == 0 {
			return res, nil
		}
		rows, err := txRows(ctx, tx, rd, rargs)
		if err != nil {
			return res, err
		}
		for _, r := range rows {
			res.vals[r.tag] = value(r.v)
		}
		return res, nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return r.deleted, r.errs, r.vals, nil
}

// setAndDeleteManyMySQL is SetAndDeleteMany on MySQL, of distinct records: the
// entries in one multi-row upsert per maxSwapRows keys, in order (a batch whose
// upsert is refused as too large writes its entries one at a time, to say which);
// then the deletes, with SwapMany; then the reads.
func (s *Store) setAndDeleteManyMySQL(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key) ([]bool, []error, [][]byte, error) {
	errs := make([]error, len(ks))
	e := s.dialect.quote(s.table)
	for from := 0; from < len(ks); from += maxSwapRows {
		to := min(from+maxSwapRows, len(ks))
		q, args := insertRowsMySQL(e, ks[from:to], func(i int) store.Entry { return es[from+i] },
			`stored_at = VALUES(stored_at), value = VALUES(value), expires_at = VALUES(expires_at)`)
		_, err := s.run(ctx, q, args...)
		switch {
		case isTooLarge(err):
			for i := from; i < to; i++ {
				if err := s.Set(ctx, ks[i], es[i]); errors.Is(err, store.ErrTooLarge) {
					errs[i] = err
				} else if err != nil {
					return nil, nil, nil, err
				}
			}
		case err != nil:
			return nil, nil, nil, err
		}
	}
	// The records to delete: those whose entries were written.
	var at []int
	var dks []store.Key
	var dolds [][]byte
	for i := range ks {
		if olds[i] != nil && errs[i] == nil {
			at, dks, dolds = append(at, i), append(dks, rks[i]), append(dolds, olds[i])
		}
	}
	deleted := make([]bool, len(ks))
	if len(dks) > 0 {
		swapped, err := s.SwapMany(ctx, dks, dolds, make([]*store.Entry, len(dks)))
		if err != nil {
			return nil, nil, nil, err
		}
		for j, i := range at {
			deleted[i] = swapped[j]
		}
	}
	vals, err := s.readAlso(ctx, also)
	if err != nil {
		return nil, nil, nil, err
	}
	return deleted, errs, vals, nil
}
