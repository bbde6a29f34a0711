package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgxpipe"
)

// TestClaimSeesEntryCommittedWithRelease is issue #11's race, made deterministic on
// PostgreSQL and MariaDB: B holds the lease record rk and, in one open transaction,
// stores its result at k and deletes rk (as SetAndDelete does). A's GetOrCreate (or
// GetAndCreate) starts meanwhile, finds no entry, and its insert of rk (or its read of
// k, on MariaDB, whose INSERT … SELECT locks the rows it reads) waits for B's row lock;
// then B commits. A must read k after that commit and report B's entry; a read from
// before it (one statement, the read sent first, or two statements sharing one
// snapshot) reports no entry with the lease taken, and A would compute a second time.
func TestClaimSeesEntryCommittedWithRelease(t *testing.T) {
	type call func(s *sqlstore.Store, ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error)
	cases := []struct {
		name     string
		open     func(t testing.TB) *sql.DB
		pipeline sqlstore.Pipeliner
		call     call
	}{
		{"Postgres/GetOrCreate/pipelined", openPostgres, pgxpipe.Pipeliner{}, (*sqlstore.Store).GetOrCreate},
		{"Postgres/GetAndCreate/pipelined", openPostgres, pgxpipe.Pipeliner{}, (*sqlstore.Store).GetAndCreate},
		// Without a Pipeliner (lib/pq, or none given), the same two statements go one
		// at a time.
		{"Postgres/GetOrCreate/sequential", openPostgres, nil, (*sqlstore.Store).GetOrCreate},
		{"Postgres/GetAndCreate/sequential", openPostgres, nil, (*sqlstore.Store).GetAndCreate},
		// Under REPEATABLE READ the pipeline's two statements share one snapshot: the
		// store must notice and read again.
		{"Postgres/GetOrCreate/pipelined/repeatable-read", openPostgresRepeatableRead, pgxpipe.Pipeliner{}, (*sqlstore.Store).GetOrCreate},
		{"Postgres/GetAndCreate/pipelined/repeatable-read", openPostgresRepeatableRead, pgxpipe.Pipeliner{}, (*sqlstore.Store).GetAndCreate},
		// On MariaDB the same two statements go one at a time. A's wait is found by
		// SHOW ENGINE INNODB STATUS: see mariaDBWaits.
		{"MariaDB/GetOrCreate/sequential", openMySQL, nil, (*sqlstore.Store).GetOrCreate},
		{"MariaDB/GetAndCreate/sequential", openMySQL, nil, (*sqlstore.Store).GetAndCreate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The deadline bounds the wait for A's lock wait, and everything else.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			db := tc.open(t) // B's transaction and the polls
			s, err := sqlstore.New(db, nil)
			if err != nil {
				t.Fatal(err)
			}
			d := s.Dialect()
			table := freshTable(t, db, d)
			// A's store. On MariaDB it has a pool of its own holding one connection,
			// whose id is how mariaDBWaits knows A's transaction; and A waits for a
			// lock as long as the test's deadline allows, not
			// innodb_lock_wait_timeout's default 50 s, so that a wait never seen
			// fails below with what InnoDB showed.
			sdb := db
			var aConn int64
			if d == sqlstore.MySQL {
				sdb = tc.open(t)
				sdb.SetMaxOpenConns(1)
				if _, err := sdb.ExecContext(ctx, `SET SESSION innodb_lock_wait_timeout = 1000`); err != nil {
					t.Fatal(err)
				}
				if err := sdb.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&aConn); err != nil {
					t.Fatal(err)
				}
			}
			if s, err = sqlstore.New(sdb, &sqlstore.Options{Table: table, Pipeline: tc.pipeline}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if got, want := s.GetsOrCreates(), d == sqlstore.Postgres && tc.pipeline != nil; got != want {
				t.Errorf("GetsOrCreates() = %v, want %v", got, want)
			}
			k := store.Key{Namespace: "race", ID: "k"}
			rk := store.Key{Namespace: store.InternalPrefix + "race", ID: "k"}
			now := time.Now()
			if ok, err := s.Swap(ctx, rk, nil, &store.Entry{Value: []byte("lease of B"), StoredAt: now}); err != nil || !ok {
				t.Fatalf("B's lease: %v, %v", ok, err)
			}

			// B stores its result and lets go of its lease, in one transaction it keeps open.
			ins := `INSERT INTO ` + table + ` (namespace, id, stored_at, value) VALUES ($1, $2, $3, $4)`
			del := `DELETE FROM ` + table + ` WHERE namespace = $1 AND id = $2`
			waiting := `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'
				AND datname = current_database() AND query LIKE '%' || $1 || '%')`
			if d == sqlstore.MySQL {
				ins = `INSERT INTO ` + table + ` (namespace, id, stored_at, value) VALUES (?, ?, ?, ?)`
				del = `DELETE FROM ` + table + ` WHERE namespace = ? AND id = ?`
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, ins, k.Namespace, k.ID, now.UnixMicro(), []byte("B's result")); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, del, rk.Namespace, rk.ID); err != nil {
				t.Fatal(err)
			}

			type result struct {
				r   store.GetAndCreateResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := tc.call(s, ctx, k, nil, rk, store.Entry{Value: []byte("lease of A"), StoredAt: time.Now()})
				done <- result{r, err}
			}()
			// Wait until A waits for one of B's row locks, then commit B.
			for w, last := false, ""; !w; {
				select {
				case res := <-done:
					t.Fatalf("A returned before B committed (%+v, %v): it did not wait for B's lock", res.r, res.err)
				default:
				}
				var err error
				if d == sqlstore.MySQL {
					var trxs string
					if w, trxs, err = mariaDBWaits(ctx, db, aConn, table); trxs != "" {
						last = trxs
					}
				} else {
					err = db.QueryRowContext(ctx, waiting, table).Scan(&w)
				}
				if ctx.Err() != nil {
					t.Fatalf("A's statement was not seen waiting for B's row lock before the test's deadline (%v); InnoDB's transactions when last looked at:\n%s",
						ctx.Err(), last)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.r.GetErr != nil || !bytes.Equal(res.r.Entry.Value, []byte("B's result")) {
				t.Errorf("A, which ran once B let go: entry %q, %v, Created %v; want B's result (else A computes again)",
					res.r.Entry.Value, res.r.GetErr, res.r.Created)
			}
			if errors.Is(res.r.GetErr, store.ErrNotFound) && res.r.Created {
				t.Log("A took the lease and saw no entry: a second computation")
			}
		})
	}
}

// openPostgresRepeatableRead opens the PostgreSQL server with REPEATABLE READ as its
// sessions' default isolation level.
func openPostgresRepeatableRead(t testing.TB) *sql.DB {
	db, err := sql.Open("pgx", postgresURL(t)+"&default_transaction_isolation=repeatable%20read")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var iso string
	if err := db.QueryRow(`SHOW transaction_isolation`).Scan(&iso); err != nil || iso != "repeatable read" {
		t.Fatalf("isolation %q, %v; want repeatable read", iso, err)
	}
	return db
}

// mariaDBWaits reports whether the transaction of MariaDB connection conn waits for
// a lock on table, and returns the list of transactions it looked at: SHOW ENGINE
// INNODB STATUS's, which InnoDB writes out anew on every call.
//
// Not information_schema's INNODB_TRX, INNODB_LOCKS or INNODB_LOCK_WAITS: they are
// one copy InnoDB fills again only when no one read it for 0.1 s
// (CACHE_MIN_IDLE_TIME_NS in trx0i_s.cc), and every read counts. Polled back to
// back, they show forever what they showed at the first poll, taken before A's
// statement waited: on MariaDB 10.11, 10,818 polls in 3 s never showed a row lock
// wait that one read after 0.15 s unread did. That is how this test's MariaDB cases
// failed in CI, A waiting out innodb_lock_wait_timeout unseen (in 2d620ae's version,
// B's loop for its own transaction id could be pinned likewise by the polls of the
// case before); where they passed, a gap of over 0.1 s between two polls (a busy
// core) must have let the copy be filled again.
func mariaDBWaits(ctx context.Context, db *sql.DB, conn int64, table string) (bool, string, error) {
	var typ, name, status string
	if err := db.QueryRowContext(ctx, `SHOW ENGINE INNODB STATUS`).Scan(&typ, &name, &status); err != nil {
		return false, "", err
	}
	const list = "\nLIST OF TRANSACTIONS FOR EACH SESSION:\n"
	i := strings.Index(status, list)
	if i < 0 {
		return false, status, nil
	}
	trxs := status[i+len(list):]
	if j := strings.Index(trxs, "\n--------\n"); j >= 0 { // the next section's header
		trxs = trxs[:j]
	}
	// Each transaction begins "---TRANSACTION id, ..." and names its connection in
	// "MariaDB thread id N, ..." (MySQL: "MySQL thread id N, ..."). A waiting one
	// then says "------- TRX HAS BEEN WAITING ... FOR THIS LOCK TO BE GRANTED:" and
	// describes the lock, "... of table `db`.`table` ...".
	thread := fmt.Sprintf(" thread id %d,", conn)
	for _, trx := range strings.Split(trxs, "\n---TRANSACTION ") {
		_, lock, waits := strings.Cut(trx, "FOR THIS LOCK TO BE GRANTED:")
		if waits && strings.Contains(trx, thread) && strings.Contains(lock, "`.`"+table+"`") {
			return true, trxs, nil
		}
	}
	return false, trxs, nil
}
