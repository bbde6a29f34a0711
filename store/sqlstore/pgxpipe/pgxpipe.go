// Package pgxpipe sends a sqlstore's paired statements to PostgreSQL in one round
// trip, using pgx.
//
// It exists apart from package sqlstore because it must import a driver: sqlstore
// imports only database/sql. Give a PostgreSQL store a Pipeliner to make a cachier
// miss two round trips instead of three (the first read takes the calculation lease
// when it finds no entry: store.GetOrCreator):
//
//	db, _ := sql.Open("pgx", dsn) // github.com/jackc/pgx/v5/stdlib
//	s, err := sqlstore.New(db, &sqlstore.Options{Pipeline: pgxpipe.Pipeliner{}})
//
// The *sql.DB must be opened with pgx's stdlib driver; on another driver's
// connection the store sends the statements one at a time. sqlstore/sqlurl's
// postgres:// opener sets it.
package pgxpipe

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/cachier-go/cachier/store/sqlstore"
)

// Pipeliner implements sqlstore.Pipeliner with a pgx.Batch on connections of pgx's
// stdlib driver. The zero value is ready to use.
type Pipeliner struct{}

var _ sqlstore.Pipeliner = Pipeliner{}

// Pipeline sends the queries as one pgx.Batch: every statement, then one Sync, in one
// round trip (prepared and cached per connection, as pgx does by default). PostgreSQL
// runs them in order in one implicit transaction, each with a snapshot of its own
// under READ COMMITTED.
func (Pipeliner) Pipeline(ctx context.Context, driverConn any, queries []string, args [][]any) (res [][][]any, err error) {
	c, ok := driverConn.(*stdlib.Conn)
	if !ok {
		return nil, fmt.Errorf("pgxpipe: connection is a %T, not a pgx stdlib connection: %w", driverConn, errors.ErrUnsupported)
	}
	if len(args) != len(queries) {
		return nil, fmt.Errorf("pgxpipe: %d queries and %d argument lists", len(queries), len(args))
	}
	var b pgx.Batch
	for i, q := range queries {
		b.Queue(q, args[i]...)
	}
	br := c.Conn().SendBatch(ctx, &b)
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			res, err = nil, cerr
		}
	}()
	res = make([][][]any, len(queries))
	for i := range queries {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				rows.Close()
				return nil, err
			}
			res[i] = append(res[i], vals)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return res, nil
}
