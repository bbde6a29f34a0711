package sqlstore_test

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgnotify"
)

// recordingListener is pgnotify's Listener that sends each payload to got once the
// store has handled it (woken its watchers).
type recordingListener struct {
	pgnotify.Listener
	got chan string
}

func (l recordingListener) Listen(ctx context.Context, conn *sql.Conn, channel string, ready func(), deliver func(string)) error {
	return l.Listener.Listen(ctx, conn, channel, ready, func(p string) {
		deliver(p)
		l.got <- p
	})
}

// A namespace watcher started under a writer id (store.WithOrigin) is not woken by the
// changes of its namespace made under that id, through any handle, by Set or
// SetAndDeleteMany; it is woken by every other change: untagged, under another id, or
// under the id for another namespace. A key's watcher is woken by all of them (waiters
// wake on the writer's own writes). PostgreSQL delivers notifications in commit order:
// once a later change's notification has been handled, an earlier one's wake-ups have
// been sent.
func TestWatchNamespaceSkipsOwnWrites(t *testing.T) {
	db := openPostgres(t)
	table := freshTable(t, db, sqlstore.Postgres)
	rec := recordingListener{got: make(chan string, 1024)}
	open := func(l sqlstore.Listener) *sqlstore.Store {
		s, err := sqlstore.New(db, &sqlstore.Options{Table: table, Listener: l})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(rec), open(pgnotify.Listener{}) // only a's payloads are recorded
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
	set := func(ctx context.Context, s *sqlstore.Store, k store.Key) {
		t.Helper()
		if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// setMany writes k as a batch does (store.SetAndDeleteBatcher), with no record
	// to delete.
	setMany := func(ctx context.Context, s *sqlstore.Store, k store.Key) {
		t.Helper()
		rk := store.Key{Namespace: "records", ID: "r"}
		_, errs, _, err := s.SetAndDeleteMany(ctx, []store.Key{k}, []store.Entry{{Value: []byte("v"), StoredAt: time.Now()}}, []store.Key{rk}, [][]byte{nil}, nil)
		if err != nil || errs[0] != nil {
			t.Fatal(err, errs[0])
		}
	}
	// delivered waits until a's listener has handled the notifications of the changes
	// made so far: it changes a record of its own and waits for that change's
	// notification, which comes after theirs.
	sentinels := 0
	delivered := func() {
		t.Helper()
		sentinels++
		id := "s" + strconv.Itoa(sentinels)
		set(ctx, b, store.Key{Namespace: "sentinel", ID: id})
		for {
			select {
			case p := <-rec.got:
				if strings.HasSuffix(p, "sentinel"+id) {
					return
				}
			case <-time.After(time.Minute): // a deadlock guard, not a timing assertion
				t.Fatal("the sentinel's notification never came")
			}
		}
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
	// been lost before it): before the first delivery, it has.
	delivered()
	woken(nsCh)
	woken(keyCh)

	for _, c := range []struct {
		name string
		ctx  context.Context
		s    *sqlstore.Store
		wake bool
		many bool // through SetAndDeleteMany
	}{
		{"own write", own, a, false, false},
		{"own write through another handle", own, b, false, false},
		{"untagged write", ctx, a, true, false},
		{"another writer's", store.WithOrigin(ctx, ns, "writer-b"), b, true, false},
		{"own id for another namespace", store.WithOrigin(ctx, "other", me), a, true, false},
		{"own batch write", own, a, false, true},
		{"untagged batch write", ctx, a, true, true},
		{"another writer's batch write", store.WithOrigin(ctx, ns, "writer-b"), b, true, true},
	} {
		if c.many {
			setMany(c.ctx, c.s, k)
		} else {
			set(c.ctx, c.s, k)
		}
		delivered()
		if got := woken(nsCh); got != c.wake {
			t.Errorf("%s: namespace watcher woken %v, want %v", c.name, got, c.wake)
		}
		if !woken(keyCh) {
			t.Errorf("%s: the key's watcher was not woken", c.name)
		}
	}
}
