// Package pgnotify wakes sqlstore watchers through PostgreSQL LISTEN/NOTIFY, using pgx.
//
// It exists apart from package sqlstore because it must import a driver: sqlstore
// imports only database/sql, so users bring the driver they already use. Give a
// PostgreSQL store a Listener to have its watchers woken within milliseconds of a
// commit instead of polling:
//
//	db, _ := sql.Open("pgx", dsn) // github.com/jackc/pgx/v5/stdlib
//	s, err := sqlstore.New(db, &sqlstore.Options{Listener: pgnotify.Listener{}})
//
// The store holds one connection of db's pool for listening, multiplexing every key
// watched in the process, for as long as it is open; count it when sizing the pool.
// The *sql.DB must be opened with pgx's stdlib driver.
package pgnotify

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/cachier-go/cachier/store/sqlstore"
)

// Listener implements sqlstore.Listener on connections of pgx's stdlib driver.
// The zero value is ready to use.
type Listener struct{}

var _ sqlstore.Listener = Listener{}

// Listen runs LISTEN on conn and delivers notification payloads until ctx is done or
// the connection fails.
func (Listener) Listen(ctx context.Context, conn *sql.Conn, channel string, ready func(), deliver func(string)) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("pgnotify: connection is a %T, not a pgx stdlib connection", dc)
		}
		pc := c.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			return err
		}
		ready()
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			deliver(n.Payload)
		}
	})
}
