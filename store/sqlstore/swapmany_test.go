package sqlstore_test

import (
	"context"
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
