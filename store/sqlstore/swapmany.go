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

var _ store.SwapBatcher = (*Store)(nil)

// maxSwapRows bounds the rows of one batched swap statement on PostgreSQL: at six
// parameters a row, well under its 65535.
const maxSwapRows = 500

// maxParallelSwaps bounds the Swaps SwapMany runs at once where it cannot batch them,
// as store.SetEach bounds its Sets.
const maxParallelSwaps = 16

// SwapMany implements store.SwapBatcher. The portable layer takes a batch's leases
// with it (store.AcquireMany: creates only) and gives them up (store.ReleaseMany:
// deletes only):
//
//   - On PostgreSQL, a batch of creates is one statement: one INSERT … SELECT … ON
//     CONFLICT DO NOTHING of every record, in the order given, so that two batches
//     taking overlapping keys in the same (sorted) order cannot each wait for a row
//     the other inserted; a batch of deletes is one DELETE … USING of the records
//     whose value is old. Each notifies the watchers of every record it changed, in
//     the same statement, as Swap does.
//   - On SQLite, every Swap of the batch runs in one transaction, one commit (see
//     sqlitetx.go): a commit is most of what a write costs there.
//   - On MySQL, a batch of creates is one multi-row INSERT … ON DUPLICATE KEY UPDATE
//     id = id, in the order given, then one read of the records: a record that holds
//     exactly next's bytes after it was created by it. (A record that already held
//     them counts as created too: for a lease, the same owner's same lease.)
//     On MariaDB a batch of deletes is one DELETE … WHERE (namespace = ? AND id = ?
//     AND value = ?) OR … RETURNING the rows it deleted.
//   - Otherwise (a batch that mixes kinds of swap or repeats a key, a swap of nothing
//     for nothing), one Swap at a time, in order; deletes of distinct keys, which do
//     not depend on one another, several at once.
//
// Each swap is atomic, and on PostgreSQL and SQLite so is the batch.
func (s *Store) SwapMany(ctx context.Context, ks []store.Key, olds [][]byte, nexts []*store.Entry) ([]bool, error) {
	if len(ks) != len(olds) || len(ks) != len(nexts) {
		return nil, fmt.Errorf("sqlstore: SwapMany of %d keys, %d old values and %d entries; pass one of each per key", len(ks), len(olds), len(nexts))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	creates, deletes, both := true, true, false
	for i := range ks {
		creates = creates && olds[i] == nil && nexts[i] != nil
		deletes = deletes && olds[i] != nil && nexts[i] == nil
		both = both || (olds[i] == nil && nexts[i] == nil)
	}
	switch {
	case len(ks) == 0:
		return []bool{}, nil
	case s.dialect == Postgres && (creates || deletes) && distinct(ks):
		return s.swapManyPG(ctx, ks, olds, nexts, creates)
	case s.dialect == SQLite && !both:
		return s.swapManyTx(ctx, ks, olds, nexts)
	case s.dialect == MySQL && creates && distinct(ks):
		return s.createManyMySQL(ctx, ks, nexts)
	}
	if deletes && s.dialect == MySQL && distinct(ks) {
		if err := s.init(ctx); err != nil { // sets returning
			return nil, err
		}
		if s.returning {
			return s.deleteManyMariaDB(ctx, ks, olds)
		}
	}
	swapped := make([]bool, len(ks))
	if deletes && distinct(ks) {
		// Deletes of distinct keys are independent: no caller can tell their order,
		// and several at once over the pool take less time than one after another.
		errs := make([]error, len(ks))
		store.Each(len(ks), maxParallelSwaps, func(i int) { swapped[i], errs[i] = s.Swap(ctx, ks[i], olds[i], nil) })
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		return swapped, nil
	}
	for i, k := range ks {
		var err error
		if swapped[i], err = s.Swap(ctx, k, olds[i], nexts[i]); err != nil {
			return nil, err
		}
	}
	return swapped, nil
}

// distinct reports whether no key appears twice in ks: a statement's result rows
// name a key, not a position.
func distinct(ks []store.Key) bool {
	seen := make(map[store.Key]struct{}, len(ks))
	for _, k := range ks {
		if _, ok := seen[k]; ok {
			return false
		}
		seen[k] = struct{}{}
	}
	return true
}

// swapManyPG is SwapMany of distinct keys on PostgreSQL, all creates or all deletes,
// one statement per maxSwapRows keys, in order.
func (s *Store) swapManyPG(ctx context.Context, ks []store.Key, olds [][]byte, nexts []*store.Entry, creates bool) ([]bool, error) {
	swapped := make([]bool, len(ks))
	for from := 0; from < len(ks); from += maxSwapRows {
		to := min(from+maxSwapRows, len(ks))
		q, args := s.swapStatement(ctx, ks, olds, nexts, from, to, creates)
		_, err := read(ctx, s, q, args, func(r *sql.Rows) (struct{}, error) {
			for r.Next() {
				var at int64
				var note sql.NullString // pg_notify's void, as text
				if err := r.Scan(&at, &note); err != nil {
					return struct{}{}, err
				}
				if at < int64(from) || at >= int64(to) {
					return struct{}{}, fmt.Errorf("sqlstore: SwapMany: a row for position %d of %d-%d", at, from, to)
				}
				swapped[at] = true
			}
			return struct{}{}, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return swapped, nil
}

// swapStatement is the statement of swapManyPG for ks[from:to] and its parameters:
// $1 the channel, then each key's row. It returns one row (position in ks, the
// notification) per record it changed.
//
// The rows are a VALUES list rather than arrays (unnest), so that any
// database/sql driver can bind them: each value is a parameter of its own.
func (s *Store) swapStatement(ctx context.Context, ks []store.Key, olds [][]byte, nexts []*store.Entry, from, to int, creates bool) (string, []any) {
	e := s.dialect.quote(s.table)
	var b strings.Builder
	args := make([]any, 1, 1+6*(to-from))
	args[0] = s.channel
	if creates {
		b.WriteString(`WITH u (namespace, id, stored_at, value, expires_at, payload, pos) AS (VALUES `)
	} else {
		b.WriteString(`WITH u (namespace, id, value, payload, pos) AS (VALUES `)
	}
	for i := from; i < to; i++ {
		if i > from {
			b.WriteString(`, `)
		}
		n := len(args)
		if creates {
			fmt.Fprintf(&b, `($%d::text, $%d::text, $%d::bigint, $%d::bytea, $%d::bigint, $%d::text, %d)`, n+1, n+2, n+3, n+4, n+5, n+6, i)
			args = append(append(args, entryArgs(ks[i], *nexts[i])...), s.changePayload(ctx, ks[i]))
		} else {
			fmt.Fprintf(&b, `($%d::text, $%d::text, $%d::bytea, $%d::text, %d)`, n+1, n+2, n+3, n+4, i)
			args = append(args, ks[i].Namespace, ks[i].ID, olds[i], s.changePayload(ctx, ks[i]))
		}
	}
	if creates {
		// ORDER BY pos: the rows go in, and wait on the rows of uncommitted inserts
		// of the same keys, in the order given.
		b.WriteString(`), c AS (INSERT INTO ` + e + ` (namespace, id, stored_at, value, expires_at)` +
			` SELECT namespace, id, stored_at, value, expires_at FROM u ORDER BY pos` +
			` ON CONFLICT (namespace, id) DO NOTHING RETURNING namespace, id)` +
			` SELECT u.pos, pg_notify($1, u.payload)::text FROM c JOIN u ON c.namespace = u.namespace AND c.id = u.id`)
	} else {
		b.WriteString(`), d AS (DELETE FROM ` + e + ` t USING u WHERE t.namespace = u.namespace AND t.id = u.id AND t.value = u.value` +
			` RETURNING u.pos, u.payload) SELECT pos, pg_notify($1, payload)::text FROM d`)
	}
	return b.String(), args
}

// swapManyTx is SwapMany on SQLite: every swap in one transaction, in order. None of
// the swaps is of nothing for nothing (which is a read, not a write).
func (s *Store) swapManyTx(ctx context.Context, ks []store.Key, olds [][]byte, nexts []*store.Entry) ([]bool, error) {
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	create, err := s.prepare(ctx, s.q.create, 5)
	if err != nil {
		return nil, err
	}
	del, err := s.prepare(ctx, s.q.deleteIf, 3)
	if err != nil {
		return nil, err
	}
	replace, err := s.prepare(ctx, s.q.replace, 6)
	if err != nil {
		return nil, err
	}
	return inTx(ctx, s, func(tx *sql.Tx) ([]bool, error) {
		swapped := make([]bool, len(ks))
		for i, k := range ks {
			var n int64
			var err error
			switch {
			case olds[i] == nil:
				n, err = txExec(ctx, tx, create, entryArgs(k, *nexts[i])...)
				err = tooLarge(err, *nexts[i])
			case nexts[i] == nil:
				n, err = txExec(ctx, tx, del, k.Namespace, k.ID, olds[i])
			default:
				a := entryArgs(k, *nexts[i])
				n, err = txExec(ctx, tx, replace, a[2], a[3], a[4], k.Namespace, k.ID, olds[i])
				err = tooLarge(err, *nexts[i])
			}
			if err != nil {
				return nil, err
			}
			swapped[i] = n > 0
		}
		return swapped, nil
	})
}

// insertRowsMySQL is one multi-row INSERT of ks's records (entry(i) for ks[i]) into
// table e, in order, with onDup as its ON DUPLICATE KEY UPDATE clause, and its
// arguments.
func insertRowsMySQL(e string, ks []store.Key, entry func(i int) store.Entry, onDup string) (string, []any) {
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + e + ` (namespace, id, stored_at, value, expires_at) VALUES `)
	args := make([]any, 0, 5*len(ks))
	for i, k := range ks {
		if i > 0 {
			b.WriteString(`, `)
		}
		b.WriteString(`(?, ?, ?, ?, ?)`)
		args = append(args, entryArgs(k, entry(i))...)
	}
	b.WriteString(` ON DUPLICATE KEY UPDATE ` + onDup)
	return b.String(), args
}

// createManyMySQL is SwapMany of distinct keys on MySQL, all creates: one multi-row
// insert per maxSwapRows keys, in order, each row going in only where there is none,
// then one read of the records (GetMany), by whose bytes it tells which it created.
func (s *Store) createManyMySQL(ctx context.Context, ks []store.Key, nexts []*store.Entry) ([]bool, error) {
	e := s.dialect.quote(s.table)
	for from := 0; from < len(ks); from += maxSwapRows {
		to := min(from+maxSwapRows, len(ks))
		q, args := insertRowsMySQL(e, ks[from:to], func(i int) store.Entry { return *nexts[from+i] }, `id = id`)
		if _, err := s.run(ctx, q, args...); err != nil {
			return nil, tooLarge(err, largest(derefs(nexts[from:to])))
		}
	}
	es, errs, err := s.GetMany(ctx, ks)
	if err != nil {
		return nil, err
	}
	swapped := make([]bool, len(ks))
	for i := range ks {
		next := nexts[i].Value
		if next == nil {
			next = []byte{}
		}
		swapped[i] = errs[i] == nil && bytes.Equal(es[i].Value, next)
	}
	return swapped, nil
}

// derefs is the entries es point at.
func derefs(es []*store.Entry) []store.Entry {
	out := make([]store.Entry, len(es))
	for i, e := range es {
		out[i] = *e
	}
	return out
}

// deleteManyMariaDB deletes, on MariaDB, the record of each of ks (distinct) whose
// value is olds[i], with one DELETE … RETURNING per maxSwapRows keys, and reports
// which it deleted. The condition is a disjunction of primary-key equalities, which
// MariaDB reads as ranges of the primary key: no scan, and rows locked in key order.
func (s *Store) deleteManyMariaDB(ctx context.Context, ks []store.Key, olds [][]byte) ([]bool, error) {
	swapped := make([]bool, len(ks))
	at := make(map[store.Key]int, len(ks))
	for i, k := range ks {
		at[k] = i
	}
	for from := 0; from < len(ks); from += maxSwapRows {
		to := min(from+maxSwapRows, len(ks))
		var b strings.Builder
		b.WriteString(`DELETE FROM ` + s.dialect.quote(s.table) + ` WHERE `)
		args := make([]any, 0, 3*(to-from))
		for i := from; i < to; i++ {
			if i > from {
				b.WriteString(` OR `)
			}
			b.WriteString(`(namespace = ? AND id = ? AND value = ?)`)
			args = append(args, ks[i].Namespace, ks[i].ID, olds[i])
		}
		b.WriteString(` RETURNING namespace, id`)
		_, err := read(ctx, s, b.String(), args, func(r *sql.Rows) (struct{}, error) {
			for r.Next() {
				var ns, id []byte
				if err := r.Scan(&ns, &id); err != nil {
					return struct{}{}, err
				}
				i, ok := at[store.Key{Namespace: string(ns), ID: string(id)}]
				if !ok {
					return struct{}{}, fmt.Errorf("sqlstore: SwapMany deleted %q/%q, which it was not given", ns, id)
				}
				swapped[i] = true
			}
			return struct{}{}, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return swapped, nil
}

// changePayload is the payload of the notification of a change of k made under ctx,
// by a batched statement or through notifyArgs, so that a watcher cannot tell a
// batch's changes from single ones: keyPayload, after the writer id of
// store.WithOrigin for k's namespace, if any.
func (s *Store) changePayload(ctx context.Context, k store.Key) string {
	return originPayload(store.Origin(ctx, k.Namespace)) + keyPayload(k)
}
