package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgnotify"
)

// A namespace watcher started under a writer id (store.WithOrigin) is not woken by the
// changes of its namespace made under that id, through any handle; it is woken by
// every other change: untagged, under another id, or under the id for another
// namespace. A key's watcher is woken by all of them (waiters wake on the writer's own
// writes). PostgreSQL delivers a session's notifications in commit order: once a later
// change's notification has woken its watcher, an earlier one's wake-up has been sent.
func TestWatchNamespaceSkipsOwnWrites(t *testing.T) {
	db := openPostgres(t)
	table := freshTable(t, db, sqlstore.Postgres)
	open := func() *sqlstore.Store {
		s, err := sqlstore.New(db, &sqlstore.Options{Table: table, Listener: pgnotify.Listener{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	ctx := context.Background()
	const ns, me = "ns", "writer-a"
	own := store.WithOrigin(ctx, ns, me)
	nsCh, stop, err := a.WatchNamespace(own, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	k := store.Key{Namespace: ns, ID: "k"}
	keyCh, stopKey, err := a.Watch(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer stopKey()
	sentinel := store.Key{Namespace: "sentinel", ID: "s"}
	sentCh, stopSent, err := a.Watch(ctx, sentinel)
	if err != nil {
		t.Fatal(err)
	}
	defer stopSent()
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(time.Minute): // a deadlock guard, not a timing assertion
			t.Fatalf("%s: no wake-up", what)
		}
	}
	set := func(ctx context.Context, s *sqlstore.Store, k store.Key) {
		t.Helper()
		if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// delivered waits until the changes made so far have been delivered to a's watchers.
	delivered := func() {
		t.Helper()
		set(ctx, b, sentinel)
		wait(sentCh, "sentinel")
	}
	woken := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}

	// The listening connection's start wakes every watcher (notifications may have
	// been lost before it): past the first delivery, it has.
	delivered()
	woken(nsCh)
	woken(keyCh)

	for _, c := range []struct {
		name string
		ctx  context.Context
		s    *sqlstore.Store
		wake bool
	}{
		{"own write", own, a, false},
		{"own write through another handle", own, b, false},
		{"untagged write", ctx, a, true},
		{"another writer's", store.WithOrigin(ctx, ns, "writer-b"), b, true},
		{"own id for another namespace", store.WithOrigin(ctx, "other", me), a, true},
	} {
		set(c.ctx, c.s, k)
		delivered()
		if got := woken(nsCh); got != c.wake {
			t.Errorf("%s: namespace watcher woken %v, want %v", c.name, got, c.wake)
		}
		if !woken(keyCh) {
			t.Errorf("%s: the key's watcher was not woken", c.name)
		}
	}
}
