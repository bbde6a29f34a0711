package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgnotify"
)

// On PostgreSQL with a Listener, watchers wake on notifications alone (no polling):
// the batched statements of SwapMany and SetAndDeleteMany must notify the watchers of
// every row they change, as Swap and SetAndDelete do, or a batch waiting on a lease
// another process releases in a batch sleeps until its poll.
func TestBatchesNotifyPostgres(t *testing.T) {
	db := openPostgres(t)
	s, err := sqlstore.New(db, &sqlstore.Options{Table: freshTable(t, db, sqlstore.Postgres), Listener: pgnotify.Listener{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	ns := "notify-" + randHex(4)
	ks := []store.Key{{Namespace: ns, ID: "a"}, {Namespace: ns, ID: "b"}, {Namespace: ns, ID: "c"}}
	rks := []store.Key{{Namespace: ns, ID: "ra"}, {Namespace: ns, ID: "rb"}, {Namespace: ns, ID: "rc"}}
	now := time.Now()
	ent := func(v string) *store.Entry { return &store.Entry{Value: []byte(v), StoredAt: now} }
	// watch watches every key of ks, runs op, and waits for a wake-up of each.
	watch := func(what string, ks []store.Key, op func() error) {
		t.Helper()
		chs := make([]<-chan struct{}, len(ks))
		for i, k := range ks {
			ch, stop, err := s.Watch(ctx, k)
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			defer stop()
			chs[i] = ch
		}
		if err := op(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for i, ch := range chs {
			select {
			case <-ch:
			case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
				t.Errorf("%s: no wake-up of %s", what, ks[i])
			}
		}
	}
	watch("SwapMany creating", rks, func() error {
		_, err := s.SwapMany(ctx, rks, make([][]byte, 3), []*store.Entry{ent("l0"), ent("l1"), ent("l2")})
		return err
	})
	watch("SwapMany deleting", rks, func() error {
		_, err := s.SwapMany(ctx, rks, [][]byte{[]byte("l0"), []byte("l1"), []byte("l2")}, make([]*store.Entry, 3))
		return err
	})
	if _, err := s.SwapMany(ctx, rks, make([][]byte, 3), []*store.Entry{ent("m0"), ent("m1"), ent("m2")}); err != nil {
		t.Fatal(err)
	}
	watch("SetAndDeleteMany", append(ks, rks...), func() error {
		_, _, _, err := s.SetAndDeleteMany(ctx, ks, []store.Entry{*ent("v0"), *ent("v1"), *ent("v2")}, rks,
			[][]byte{[]byte("m0"), []byte("m1"), []byte("m2")}, nil)
		return err
	})
}

// Batches whose keys overlap take their leases, and write their entries, in the order
// given (sorted, as cachier's Batch gives them): 4 stores, each with its own
// connections, create the records of overlapping runs of 400 keys at once, then write
// the entries of all 400 and delete the records they created, round after round, and
// no call ever fails. Rows written in any other order would let two batches each wait
// for a row the other wrote: PostgreSQL aborts one with a deadlock (SQLSTATE 40P01),
// which the portable layer would hide (by taking the leases again one at a time; by
// releasing them again); so this calls the driver itself.
func TestSwapManyOverlappingBatchesPostgres(t *testing.T) {
	db := openPostgres(t)
	table := freshTable(t, db, sqlstore.Postgres)
	const workers, rounds = 4, 10
	stores := make([]*sqlstore.Store, workers)
	for w := range stores {
		d, err := sqlstore.New(openPostgres(t), &sqlstore.Options{Table: table})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		stores[w] = d
	}
	ctx := context.Background()
	var all []store.Key
	for i := range 800 {
		all = append(all, store.Key{Namespace: "overlap", ID: fmt.Sprintf("k%03d", i)})
	}
	for round := range rounds {
		start := make(chan struct{})
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				<-start
				ks := all[w*133 : w*133+400] // each overlaps the next by 267 keys
				nexts := make([]*store.Entry, len(ks))
				for i := range nexts {
					nexts[i] = &store.Entry{Value: fmt.Appendf(nil, "w%d-r%d", w, round), StoredAt: time.Now()}
				}
				created, err := stores[w].SwapMany(ctx, ks, make([][]byte, len(ks)), nexts)
				if err != nil {
					errs <- fmt.Errorf("SwapMany creating: %w", err)
					return
				}
				// The entries of the keys, written over one another's, and the
				// records created deleted, in one SetAndDeleteMany.
				eks := make([]store.Key, len(ks))
				es := make([]store.Entry, len(ks))
				olds := make([][]byte, len(ks))
				for i, k := range ks {
					eks[i] = store.Key{Namespace: "overlap-entries", ID: k.ID}
					es[i] = *nexts[i]
					if created[i] {
						olds[i] = nexts[i].Value
					}
				}
				deleted, _, _, err := stores[w].SetAndDeleteMany(ctx, eks, es, ks, olds, nil)
				if err != nil {
					errs <- fmt.Errorf("SetAndDeleteMany: %w", err)
					return
				}
				for i := range deleted {
					if deleted[i] != created[i] {
						errs <- fmt.Errorf("SetAndDeleteMany %s: deleted %v, created %v", ks[i], deleted[i], created[i])
						return
					}
				}
				errs <- nil
			}()
		}
		close(start)
		for range workers {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
