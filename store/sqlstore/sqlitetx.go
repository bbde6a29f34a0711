package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/cachier-go/cachier/store"
)

// SQLite runs in the process: what a statement costs is its work, and a write
// transaction's commit (the WAL frames, the locks: a system call or several each)
// is most of a write's. So on SQLite the statements of GetAndCreate and GetOrCreate
// (the insert, then the reads) and of SetAndDelete (the upsert, the delete, the reads)
// each run in one transaction, one commit, instead of one commit per write. Each
// transaction begins with its write, which takes SQLite's one write lock (waiting
// for it under the busy timeout, like any write); the reads that follow in it see
// every commit made before that lock was taken, which is all GetOrCreate's argument
// asks of them.

// inTx runs f in one transaction, the whole of it again while SQLite says busy.
func inTx[T any](ctx context.Context, s *Store, f func(tx *sql.Tx) (T, error)) (T, error) {
	var zero T
	return retry(ctx, s, func() (T, error) {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return zero, err
		}
		v, err := f(tx)
		if err != nil {
			return zero, errors.Join(err, ignoreDone(tx.Rollback()))
		}
		return v, tx.Commit()
	})
}

// ignoreDone drops sql.ErrTxDone, which Rollback returns after a failed Commit.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// prepared is a statement of the store and its prepared form (nil when it is not
// kept), prepared before a transaction begins: preparing on the pool while the
// transaction holds a connection would wait forever for a pool of one (an in-memory
// database).
type prepared struct {
	query string
	st    *sql.Stmt
}

func (s *Store) prepare(ctx context.Context, query string, params int) (prepared, error) {
	st, err := s.stmt(ctx, query, params)
	return prepared{query, st}, err
}

// txExec runs a statement in tx and returns how many rows it changed.
func txExec(ctx context.Context, tx *sql.Tx, p prepared, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if p.st != nil {
		res, err = tx.StmtContext(ctx, p.st).ExecContext(ctx, args...)
	} else {
		res, err = tx.ExecContext(ctx, p.query, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// txRows runs a multi-key read in tx.
func txRows(ctx context.Context, tx *sql.Tx, p prepared, args []any) ([]row, error) {
	var r *sql.Rows
	var err error
	if p.st != nil {
		r, err = tx.StmtContext(ctx, p.st).QueryContext(ctx, args...)
	} else {
		r, err = tx.QueryContext(ctx, p.query, args...)
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rows, err := scanRows(r)
	if err != nil {
		return nil, err
	}
	return rows, errors.Join(r.Err(), r.Close())
}

// insertThenReadTx is insertThenRead on SQLite: the insert and the reads in one
// transaction.
func (s *Store) insertThenReadTx(ctx context.Context, create string, cargs []any, reads string, rargs []any) (bool, []row, error) {
	if err := s.init(ctx); err != nil {
		return false, nil, err
	}
	ins, err := s.prepare(ctx, create, len(cargs))
	if err != nil {
		return false, nil, err
	}
	rd, err := s.prepare(ctx, reads, len(rargs))
	if err != nil {
		return false, nil, err
	}
	type result struct {
		created bool
		rows    []row
	}
	r, err := inTx(ctx, s, func(tx *sql.Tx) (result, error) {
		n, err := txExec(ctx, tx, ins, cargs...)
		if err != nil {
			return result{}, err
		}
		rows, err := txRows(ctx, tx, rd, rargs)
		return result{n > 0, rows}, err
	})
	return r.created, r.rows, err
}

// setAndDeleteTx is SetAndDelete on SQLite: the upsert, the delete and the reads in
// one transaction.
func (s *Store) setAndDeleteTx(ctx context.Context, k store.Key, e store.Entry, rk store.Key, old []byte, also []store.Key) (bool, [][]byte, error) {
	if err := s.init(ctx); err != nil {
		return false, nil, err
	}
	eargs := entryArgs(k, e)
	set, err := s.prepare(ctx, s.q.set, len(eargs))
	if err != nil {
		return false, nil, err
	}
	del, err := s.prepare(ctx, s.q.deleteIf, 3)
	if err != nil {
		return false, nil, err
	}
	var b strings.Builder
	rargs := s.selectKeys(&b, nil, tagAlso, also)
	var rd prepared
	if len(also) > 0 {
		if rd, err = s.prepare(ctx, b.String(), len(rargs)); err != nil {
			return false, nil, err
		}
	}
	type result struct {
		deleted bool
		vals    [][]byte
	}
	r, err := inTx(ctx, s, func(tx *sql.Tx) (result, error) {
		res := result{vals: make([][]byte, len(also))}
		if _, err := txExec(ctx, tx, set, eargs...); err != nil {
			return res, tooLarge(err, e)
		}
		if old != nil {
			n, err := txExec(ctx, tx, del, rk.Namespace, rk.ID, old)
			if err != nil {
				return res, err
			}
			res.deleted = n > 0
		}
		if len(also) == 0 {
			return res, nil
		}
		rows, err := txRows(ctx, tx, rd, rargs)
		if err != nil {
			return res, err
		}
		for _, r := range rows {
			res.vals[r.tag-tagAlso] = value(r.v)
		}
		return res, nil
	})
	if err != nil {
		return false, nil, err
	}
	return r.deleted, r.vals, nil
}
