package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgnotify"
	"github.com/cachier-go/cachier/store/storetest"
)

// TestPostgresOutage stops the server under a store: calls fail with errors instead
// of hanging, watchers are woken (notifications may have been lost), and when the
// server is back the same *sql.DB and Store work again, notifications included.
func TestPostgresOutage(t *testing.T) {
	srv := testserver.Dedicated(t, testserver.KindPostgres)
	db, err := sql.Open("pgx", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := sqlstore.New(db, &sqlstore.Options{Listener: pgnotify.Listener{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	k := store.Key{Namespace: "outage", ID: "k"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("before"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ch, stop, err := s.Watch(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	storetest.Drain(ch)

	srv.Stop(t)

	// Every call returns an error, and none is mistaken for a miss or a held lease.
	for name, call := range map[string]func(context.Context) error{
		"Get": func(ctx context.Context) error { _, err := s.Get(ctx, k); return err },
		"Set": func(ctx context.Context) error {
			return s.Set(ctx, k, store.Entry{Value: []byte("during"), StoredAt: time.Now()})
		},
		"Acquire": func(ctx context.Context) error {
			_, err := store.Adapt(s).Acquire(ctx, k, store.Owner{Host: "h", PID: 1, Token: "t"}, time.Minute)
			return err
		},
		"Namespaces": func(ctx context.Context) error { _, err := s.Namespaces(ctx); return err },
	} {
		// The deadline only turns a hang into a failure; the calls should fail fast
		// (connection refused).
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := call(cctx)
		cancel()
		switch {
		case err == nil:
			t.Errorf("%s with the server down succeeded", name)
		case errors.Is(err, context.DeadlineExceeded):
			t.Errorf("%s with the server down hung until the deadline", name)
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrLeaseHeld):
			t.Errorf("%s with the server down: %v; must not look like a miss or a held lease", name, err)
		}
	}
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Error("the watcher was not woken when the notification connection was lost")
	}

	srv.Start(t)

	// Start returns once the server accepts connections. Connections the pool kept
	// from before the stop are dead: each may fail one call before database/sql
	// discards it, so the store must answer within that many calls, without waiting.
	for tries := db.Stats().OpenConnections + 1; ; tries-- {
		e, err := s.Get(ctx, k)
		if err == nil {
			if string(e.Value) != "before" {
				t.Errorf("after restart Get = %q, want %q", e.Value, "before")
			}
			break
		}
		if tries == 0 {
			t.Fatalf("the store did not recover after the server restarted: %v", err)
		}
	}

	// Notifications come back: a write from another connection pool wakes the watcher.
	other, err := sql.Open("pgx", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s2, err := sqlstore.New(other, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	// The listener reconnects in the background, and a notification sent before it
	// listens again is lost: write until one wakes the watcher.
	deadline := time.Now().Add(60 * time.Second)
	for woke := false; !woke; {
		storetest.Drain(ch)
		if err := s2.Set(ctx, k, store.Entry{Value: []byte("after"), StoredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
			woke = true
		case <-time.After(time.Second):
			if time.Now().After(deadline) {
				t.Fatal("no wake-up from another process's Set after the server restarted")
			}
		}
	}
}
