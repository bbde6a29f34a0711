package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgxpipe"
)

// TestClaimSeesEntryCommittedWithRelease is issue #11's race, made deterministic on
// PostgreSQL: B holds the lease record rk and, in one open transaction, stores its
// result at k and deletes rk (as SetAndDelete does). A's GetOrCreate (or GetAndCreate)
// starts meanwhile, finds no entry, and its insert of rk waits for B's row lock; then B
// commits. A's insert goes in (rk is gone), so A must read k after that commit and
// report B's entry; a read from before it (one statement, or the read sent first)
// reports no entry with the lease taken, and A would compute a second time.
func TestClaimSeesEntryCommittedWithRelease(t *testing.T) {
	cases := []struct {
		name     string
		pipeline sqlstore.Pipeliner
		call     func(s *sqlstore.Store, ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error)
	}{
		{"GetOrCreate/pipelined", pgxpipe.Pipeliner{}, (*sqlstore.Store).GetOrCreate},
		{"GetAndCreate/pipelined", pgxpipe.Pipeliner{}, (*sqlstore.Store).GetAndCreate},
		// Without a Pipeliner, GetOrCreate sends the same two statements one at a time.
		{"GetOrCreate/sequential", nil, (*sqlstore.Store).GetOrCreate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			db := openPostgres(t)
			table := freshTable(t, db, sqlstore.Postgres)
			s, err := sqlstore.New(db, &sqlstore.Options{Table: table, Pipeline: tc.pipeline})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if got := s.GetsOrCreates(); got != (tc.pipeline != nil) {
				t.Errorf("GetsOrCreates() = %v with Pipeline %v", got, tc.pipeline)
			}
			k := store.Key{Namespace: "race", ID: "k"}
			rk := store.Key{Namespace: store.InternalPrefix + "race", ID: "k"}
			now := time.Now()
			if ok, err := s.Swap(ctx, rk, nil, &store.Entry{Value: []byte("lease of B"), StoredAt: now}); err != nil || !ok {
				t.Fatalf("B's lease: %v, %v", ok, err)
			}

			// B stores its result and lets go of its lease, in one transaction it keeps open.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (namespace, id, stored_at, value) VALUES ($1, $2, $3, $4)`,
				k.Namespace, k.ID, now.UnixMicro(), []byte("B's result")); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE namespace = $1 AND id = $2`, rk.Namespace, rk.ID); err != nil {
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
			// Wait until A's insert waits for B's row lock, then commit B.
			for waiting := false; !waiting; {
				select {
				case res := <-done:
					t.Fatalf("A returned before B committed (%+v, %v): its insert did not wait for B's lock", res.r, res.err)
				default:
				}
				err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'
					AND datname = current_database() AND query LIKE '%' || $1 || '%')`, table).Scan(&waiting)
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
				t.Errorf("A, whose insert went in once B let go: entry %q, %v, Created %v; want B's result (else A computes again)",
					res.r.Entry.Value, res.r.GetErr, res.r.Created)
			}
			if errors.Is(res.r.GetErr, store.ErrNotFound) && res.r.Created {
				t.Log("A took the lease and saw no entry: a second computation")
			}
		})
	}
}
