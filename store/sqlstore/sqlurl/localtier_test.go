package sqlurl

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
)

// TestLocalTierAcrossProcessesOnPostgres: changes reach another process's local tier
// through LISTEN/NOTIFY, also when its LISTEN connection is terminated just before
// each change.
func TestLocalTierAcrossProcessesOnPostgres(t *testing.T) {
	url := testserver.Postgres(t).URL
	t.Run("notified", func(t *testing.T) { proctest.LocalTierAcrossProcesses(t, url, proctest.TierChanges, nil) })
	t.Run("connection killed", func(t *testing.T) {
		db, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		proctest.LocalTierAcrossProcesses(t, url, proctest.TierChanges, func(t testing.TB) {
			// The previous round's kill may still be reconnecting (with backoff): wait
			// until a LISTEN connection is there again, then terminate it.
			deadline := time.Now().Add(time.Minute)
			for {
				var n int
				err := db.QueryRowContext(context.Background(),
					`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`).Scan(&n)
				if err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("no LISTEN connection to terminate within a minute")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	})
}

// BenchmarkLocalTierCoherenceOnPostgres: from a change in one process to a miss in
// another process's local tier, over LISTEN/NOTIFY.
func BenchmarkLocalTierCoherenceOnPostgres(b *testing.B) {
	proctest.ReportCoherence(b, testserver.Postgres(b).URL, nil)
}

// BenchmarkLocalTierCoherencePolled: the same on MariaDB and SQLite, which cannot
// notify: the store's polling watcher of each marker row reads it 1ms after the last
// change it saw, then ever more slowly up to PollInterval (poll_interval, 100ms by
// default) apart, so a change reaches another process within PollInterval and one
// read. LocalTierBound (one second by default) holds even if that watcher fails.
func BenchmarkLocalTierCoherencePolled(b *testing.B) {
	for _, e := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"mariadb", mysqlURL},
		{"sqlite", func(b testing.TB) string { return "sqlite://" + filepath.Join(b.TempDir(), "cache.db") }},
	} {
		b.Run(e.name, func(b *testing.B) { proctest.ReportCoherence(b, e.url(b), nil) })
	}
}

// TestWatchNamespaceOnPostgres: a namespace watcher wakes on a write, a delete or a
// clear of any key of its namespace, and the counters' watcher on a bump, each from
// the change's own notification; not on another namespace's keys nor on the lease
// records of its own. SQLite, which only polls, cannot watch a namespace.
func TestWatchNamespaceOnPostgres(t *testing.T) {
	ctx := context.Background()
	open := func(url string) store.Store {
		s, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s, other := open(testserver.Postgres(t).URL), open(testserver.Postgres(t).URL)
	nn := s.(store.NamespaceNotifier)
	ns := "watchns-" + t.Name() + time.Now().Format("150405.000000000")
	t.Cleanup(func() { s.Clear(ctx, ns) })
	watch := func(ns string) <-chan struct{} {
		ch, stop, err := nn.WatchNamespace(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return ch
	}
	nsCh, ctrCh := watch(ns), watch(store.InternalPrefix)
	// Notifications arrive in commit order on the one listening connection: once a
	// sentinel key's watcher wakes, every earlier change has been delivered. The
	// sentinel is changed through another Store, whose changes reach s only so (s
	// wakes its watchers of its own changes at once).
	sentinel := store.Key{Namespace: ns + "-sentinel", ID: "s"}
	sentCh, stop, err := s.(store.Notifier).Watch(ctx, sentinel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	e := store.Entry{Value: []byte("v"), StoredAt: time.Now()}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
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
	// wait returns whether ch was woken by the changes made before it is called.
	wait := func(ch <-chan struct{}) bool {
		t.Helper()
		must(other.Set(ctx, sentinel, e))
		select {
		case <-sentCh:
		case <-time.After(time.Minute): // a guard against a lost listener, not a timing assertion
			t.Fatal("the sentinel's change was not notified")
		}
		return woken(ch)
	}

	// Every connect and every loss of the listening connection wakes all watchers
	// (notifications may have been lost), so one wake-up may be spurious: the
	// listener's first connect can land after the watch began. A watcher that the
	// changes below wake every time, three times over, is woken by them.
	for try := 0; ; try++ {
		woken(nsCh)
		must(s.Set(ctx, store.Key{Namespace: ns + "x", ID: "a"}, e))
		must(s.Set(ctx, store.Key{Namespace: store.InternalPrefix + ns, ID: "a"}, e))
		if !wait(nsCh) {
			break
		}
		if try == 2 {
			t.Fatal("woken by another namespace or by a lease record, three times")
		}
	}
	for _, c := range []struct {
		what   string
		change func() error
	}{
		{"Set", func() error { return s.Set(ctx, store.Key{Namespace: ns, ID: "a"}, e) }},
		{"Delete", func() error { return s.Delete(ctx, store.Key{Namespace: ns, ID: "a"}) }},
		{"Clear", func() error {
			must(s.Set(ctx, store.Key{Namespace: ns, ID: "b"}, e))
			wait(nsCh)
			return s.Clear(ctx, ns)
		}},
	} {
		must(c.change())
		if !wait(nsCh) {
			t.Fatalf("%s of a key of the namespace did not wake its watcher", c.what)
		}
	}
	woken(ctrCh)
	if _, err := s.(store.Versioner).Bump(ctx, ns+"-counter"); err != nil {
		t.Fatal(err)
	}
	if !wait(ctrCh) {
		t.Fatal("a bump did not wake the counters' watcher")
	}

	sq := open("sqlite://" + filepath.Join(t.TempDir(), "cache.db"))
	if _, _, err := sq.(store.NamespaceNotifier).WatchNamespace(ctx, ns); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("WatchNamespace on SQLite: %v, want errors.ErrUnsupported", err)
	}
}
