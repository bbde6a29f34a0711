package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
)

// newStore returns a store of e on a fresh table.
func newStore(t *testing.T, e engine) *sqlstore.Store {
	t.Helper()
	db := e.open(t)
	s, err := sqlstore.New(db, &sqlstore.Options{Table: freshTable(t, db, e.dialect)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rec is a record of the portable layer's namespaces.
func rec(ns, id string) store.Key { return store.Key{Namespace: store.InternalPrefix + ns, ID: id} }

func wantValue(t *testing.T, s *sqlstore.Store, k store.Key, want []byte) {
	t.Helper()
	e, err := s.Get(context.Background(), k)
	switch {
	case want == nil && !errors.Is(err, store.ErrNotFound):
		t.Errorf("Get(%q) = %q, %v; want none", k, e.Value, err)
	case want != nil && (err != nil || !bytes.Equal(e.Value, want)):
		t.Errorf("Get(%q) = %q, %v; want %q", k, e.Value, err, want)
	}
}

// TestSwap checks each form of Swap on every engine, in namespaces 201 bytes long (the
// portable layer's prefix on the longest namespace), and the one MySQL cannot report
// by itself: a compare-and-swap that writes the row over itself.
func TestSwap(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newStore(t, e)
			ctx := context.Background()
			k := rec(string(bytes.Repeat([]byte("n"), store.MaxNamespaceLen)), "k")
			at := time.UnixMicro(time.Now().UnixMicro())
			exp := at.Add(time.Hour)
			ent := func(v string) *store.Entry { return &store.Entry{Value: []byte(v), StoredAt: at, ExpiresAt: exp} }
			swap := func(old []byte, next *store.Entry, want bool) {
				t.Helper()
				if ok, err := s.Swap(ctx, k, old, next); err != nil || ok != want {
					t.Fatalf("Swap(%q -> %v) = %v, %v; want %v", old, next, ok, err, want)
				}
			}
			swap(nil, nil, true) // absent, stays absent
			swap(nil, ent("a"), true)
			if e, err := s.Get(ctx, k); err != nil || !e.ExpiresAt.Equal(exp) || !e.StoredAt.Equal(at) {
				t.Errorf("Get after create = %+v, %v; want stored at %v, expiring at %v", e, err, at, exp)
			}
			swap(nil, nil, false)
			swap(nil, ent("b"), false)
			wantValue(t, s, k, []byte("a"))
			swap([]byte("x"), ent("b"), false)
			swap([]byte("a"), ent("a"), true) // the same row again: MySQL reports 0 changed rows
			swap([]byte("a"), ent("b"), true)
			wantValue(t, s, k, []byte("b"))
			swap([]byte("a"), nil, false)
			swap([]byte("b"), nil, true)
			wantValue(t, s, k, nil)
			swap([]byte("b"), ent("c"), false)
			swap([]byte("b"), nil, false)
			wantValue(t, s, k, nil)
		})
	}
}

// TestSwapRace has goroutines create one record, then compare-and-swap it, then
// delete it, all at once: exactly one wins each step.
func TestSwapRace(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newStore(t, e)
			ctx := context.Background()
			k := rec("race", "k")
			for step, old := range [][]byte{nil, []byte("0"), []byte("1")} {
				var wg sync.WaitGroup
				var mu sync.Mutex
				var won []int
				start := make(chan struct{})
				for i := range 8 {
					wg.Go(func() {
						<-start
						next := &store.Entry{Value: fmt.Appendf(nil, "%d", step), StoredAt: time.Now()}
						if step == 2 {
							next = nil
						}
						ok, err := s.Swap(ctx, k, old, next)
						if err != nil {
							t.Error(err)
						}
						if ok {
							mu.Lock()
							won = append(won, i)
							mu.Unlock()
						}
					})
				}
				close(start)
				wg.Wait()
				if len(won) != 1 {
					t.Fatalf("step %d: %d winners %v", step, len(won), won)
				}
			}
		})
	}
}

// TestGetAndCreate checks what GetAndCreate reads and creates: the entry (or a miss),
// the records beside it in order (nil for a missing one), and rk created only when
// absent, with Cur the record that is there.
func TestGetAndCreate(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newStore(t, e)
			ctx := context.Background()
			k := store.Key{Namespace: "ns", ID: "k"}
			rk := rec("ns", "k")
			c1, c2 := rec("", "c1"), rec("", "c2")
			now := time.UnixMicro(time.Now().UnixMicro())
			if err := s.Set(ctx, c2, store.Entry{Value: []byte("two"), StoredAt: now}); err != nil {
				t.Fatal(err)
			}
			also := []store.Key{c1, c2, c2}
			r, err := s.GetAndCreate(ctx, k, also, rk, store.Entry{Value: []byte("mine"), StoredAt: now})
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(r.GetErr, store.ErrNotFound) || !r.Created || string(r.Cur) != "mine" ||
				!slices.EqualFunc(r.Also, [][]byte{nil, []byte("two"), []byte("two")}, bytes.Equal) {
				t.Errorf("first GetAndCreate = %+v; want a miss, created, Also [nil two two]", r)
			}
			wantValue(t, s, rk, []byte("mine"))

			if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			r, err = s.GetAndCreate(ctx, k, nil, rk, store.Entry{Value: []byte("yours"), StoredAt: now})
			if err != nil {
				t.Fatal(err)
			}
			if r.GetErr != nil || string(r.Entry.Value) != "v" || !r.Entry.StoredAt.Equal(now) ||
				!r.Entry.ExpiresAt.Equal(now.Add(time.Hour)) || r.Created || string(r.Cur) != "mine" || len(r.Also) != 0 {
				t.Errorf("second GetAndCreate = %+v; want the entry, not created, Cur mine", r)
			}
			wantValue(t, s, rk, []byte("mine"))
		})
	}
}

// TestGetAndCreateRace has goroutines on their own connections create one record at
// once: exactly one creates it, and every other learns its value (on PostgreSQL the
// losers' statements cannot see the winner's row and run again).
func TestGetAndCreateRace(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newStore(t, e)
			ctx := context.Background()
			for round := range 5 {
				k := store.Key{Namespace: "ns", ID: fmt.Sprint(round)}
				var wg sync.WaitGroup
				var mu sync.Mutex
				var created []string
				start := make(chan struct{})
				curs := make([]string, 8)
				for i := range curs {
					wg.Go(func() {
						<-start
						r, err := s.GetAndCreate(ctx, k, nil, rec("ns", k.ID), store.Entry{Value: fmt.Appendf(nil, "%d", i), StoredAt: time.Now()})
						if err != nil {
							t.Error(err)
							return
						}
						curs[i] = string(r.Cur)
						if r.Created {
							mu.Lock()
							created = append(created, curs[i])
							mu.Unlock()
						}
					})
				}
				close(start)
				wg.Wait()
				if len(created) != 1 {
					t.Fatalf("round %d: created by %v; want exactly one", round, created)
				}
				for i, c := range curs {
					if c != created[0] {
						t.Errorf("round %d: caller %d saw %q; want the winner's %q", round, i, c, created[0])
					}
				}
			}
		})
	}
}

// TestSetAndDelete checks that SetAndDelete stores the entry, deletes rk only when its
// value is old, and reads the records of also after both.
func TestSetAndDelete(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newStore(t, e)
			ctx := context.Background()
			k := store.Key{Namespace: "ns", ID: "k"}
			rk := rec("ns", "k")
			c := rec("", "c")
			now := time.UnixMicro(time.Now().UnixMicro())
			set := func(k store.Key, v string) {
				if err := s.Set(ctx, k, store.Entry{Value: []byte(v), StoredAt: now}); err != nil {
					t.Fatal(err)
				}
			}
			set(rk, "lease")
			set(c, "counter")
			deleted, vals, err := s.SetAndDelete(ctx, k, store.Entry{Value: []byte("v1"), StoredAt: now}, rk, []byte("other"), []store.Key{c, rec("", "none")})
			if err != nil || deleted || !slices.EqualFunc(vals, [][]byte{[]byte("counter"), nil}, bytes.Equal) {
				t.Errorf("SetAndDelete with another lease = %v, %q, %v; want not deleted, [counter nil]", deleted, vals, err)
			}
			wantValue(t, s, k, []byte("v1"))
			wantValue(t, s, rk, []byte("lease"))
			deleted, vals, err = s.SetAndDelete(ctx, k, store.Entry{Value: []byte("v2"), StoredAt: now}, rk, []byte("lease"), nil)
			if err != nil || !deleted || len(vals) != 0 {
				t.Errorf("SetAndDelete with our lease = %v, %q, %v; want deleted, no values", deleted, vals, err)
			}
			wantValue(t, s, k, []byte("v2"))
			wantValue(t, s, rk, nil)
			deleted, _, err = s.SetAndDelete(ctx, k, store.Entry{Value: []byte("v3"), StoredAt: now}, rk, nil, nil)
			if err != nil || deleted {
				t.Errorf("SetAndDelete of no lease = %v, %v; want not deleted", deleted, err)
			}
			wantValue(t, s, k, []byte("v3"))
		})
	}
}

// TestInternalRecordsStayInternal checks that the portable layer's records (a lease, a
// counter) are neither listed with their namespace's entries nor removed by its Clear
// or DeleteBefore.
func TestInternalRecordsStayInternal(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			d := newStore(t, e)
			s := store.Adapt(d)
			v := s.(store.Versioner)
			ctx := context.Background()
			k := store.Key{Namespace: "ns", ID: "k"}
			if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			l, err := s.Acquire(ctx, k, store.Owner{Token: "t"}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Bump(ctx, "tag"); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for info, err := range s.Entries(ctx, "ns") {
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, info.Key.ID)
			}
			if !slices.Equal(ids, []string{"k"}) {
				t.Errorf("Entries(ns) = %q; want [k]", ids)
			}
			if nss, err := s.Namespaces(ctx); err != nil || !slices.Equal(nss, []string{"ns"}) {
				t.Errorf("Namespaces = %q, %v; want [ns]", nss, err)
			}
			if err := s.Clear(ctx, "ns"); err != nil {
				t.Fatal(err)
			}
			if n, err := s.DeleteBefore(ctx, "ns", time.Now().Add(time.Hour)); err != nil || n != 0 {
				t.Errorf("DeleteBefore after Clear = %d, %v", n, err)
			}
			var leases []store.Lease
			for l, err := range s.Leases(ctx, "ns") {
				if err != nil {
					t.Fatal(err)
				}
				leases = append(leases, l)
			}
			if len(leases) != 1 || leases[0].Owner != l.Owner {
				t.Errorf("Leases after Clear = %+v; want the lease of %v", leases, l.Owner)
			}
			if vs, err := v.Versions(ctx, []string{"tag"}); err != nil || vs[0] == 0 {
				t.Errorf("Versions after Clear = %v, %v; want the bumped counter", vs, err)
			}
			if n, err := s.ReleaseAll(ctx, "ns"); err != nil || n != 1 {
				t.Errorf("ReleaseAll = %d, %v; want 1", n, err)
			}
		})
	}
}

// TestGetAndCreateAfterBlockedInsert makes PostgreSQL's race certain: another session
// inserts rk and holds its transaction open until GetAndCreate is waiting on the row
// lock, then commits. The statement's snapshot predates that row, so its insert does
// nothing and its read does not see the row; GetAndCreate must run again and return
// the other session's value, not "not created, nothing there".
func TestGetAndCreateAfterBlockedInsert(t *testing.T) {
	e := engines[1]
	db := e.open(t)
	table := freshTable(t, db, e.dialect)
	s, err := sqlstore.New(db, &sqlstore.Options{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	k, rk := store.Key{Namespace: "ns", ID: "k"}, rec("ns", "k")
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) { // creates the table
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (namespace, id, stored_at, value) VALUES ($1, $2, 1, 'theirs')`, rk.Namespace, rk.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan store.GetAndCreateResult, 1)
	go func() {
		r, err := s.GetAndCreate(ctx, k, nil, rk, store.Entry{Value: []byte("mine"), StoredAt: time.Now()})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	// Wait, by watching the server, until the call waits on the uncommitted row.
	for {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%'||$1||'%'`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("GetAndCreate returned %+v before the other session committed", r)
		case <-time.After(time.Millisecond):
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.Created || string(r.Cur) != "theirs" {
		t.Errorf("GetAndCreate = created %v, Cur %q; want not created, Cur %q", r.Created, r.Cur, "theirs")
	}
}
