package named

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// newClock returns a fake clock the test moves by hand.
func newClock() *clock.Fake { return clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newTestManager returns a manager without a background goroutine, on a fake clock,
// checking versions every minute.
func newTestManager(t testing.TB, st store.Driver, clk *clock.Fake) *Manager {
	t.Helper()
	m, err := NewManager(st, &Options{Name: "test", Clock: clk, Logger: quiet, CheckInterval: time.Minute, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

func newMem(t testing.TB) *memstore.Store {
	st := memstore.New(nil)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// localOnly hides the store's optional interfaces, Versioner among them: a real store
// as a third-party store without counters would be.
type localOnly struct{ store.Driver }
