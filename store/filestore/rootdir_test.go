package filestore_test

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
)

// mustGet fails the test unless s holds k with value want.
func mustGet(t *testing.T, s store.Driver, k store.Key, want string) {
	t.Helper()
	e, err := s.Get(context.Background(), k)
	if err != nil {
		t.Fatalf("Get(%v): %v, want %q", k, err, want)
	}
	if string(e.Value) != want {
		t.Fatalf("Get(%v) = %q, want %q", k, e.Value, want)
	}
}

// After rm -rf of the root, the store re-creates it: the next Set succeeds and a later
// Get hits; a store opened anew on the path (another process) sees its entries and it
// sees theirs. A miss looks for a replaced root at most once a second of the store's
// clock.
func TestRootRemovedIsRecreated(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
	dir := t.TempDir()
	s := newStore(t, &filestore.Options{Dir: dir, Clock: clk.Now})
	k := func(id string) store.Key { return store.Key{Namespace: "ns", ID: id} }

	mustSet(t, s, k("a"), "A")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k("a")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after rm -rf: %v, want ErrNotFound", err)
	}
	mustSet(t, s, k("b"), "B") // re-creates the root
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("root not re-created: %v", err)
	}
	mustGet(t, s, k("b"), "B")

	// Another process, started now, shares the re-created directory both ways.
	s2 := newStore(t, &filestore.Options{Dir: dir, Clock: clk.Now})
	mustGet(t, s2, k("b"), "B")
	mustSet(t, s2, k("c"), "C")
	mustGet(t, s, k("c"), "C")

	// Removed again, and re-created by a new process before s writes: s's miss finds
	// the new directory (a miss checks at most once per second of the store's clock).
	clk.Advance(time.Second)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s3 := newStore(t, &filestore.Options{Dir: dir, Clock: clk.Now})
	mustSet(t, s3, k("d"), "D")
	mustGet(t, s, k("d"), "D")

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s4 := newStore(t, &filestore.Options{Dir: dir, Clock: clk.Now})
	mustSet(t, s4, k("e"), "E")
	if _, err := s.Get(ctx, k("e")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get within a second of the last check: %v, want a miss (the check is rate-limited)", err)
	}
	clk.Advance(time.Second)
	mustGet(t, s, k("e"), "E")
	mustSet(t, s, k("f"), "F")
	mustGet(t, s4, k("f"), "F")
}

// A cachier.Func on a file store keeps caching after its directory is removed.
func TestRootRemovedFuncKeepsCaching(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fst := newStore(t, &filestore.Options{Dir: dir})
	var n atomic.Int64
	f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) {
		n.Add(1)
		return x * 2, nil
	}, cachier.Name("rootdir-test"), cachier.WithStore(store.Adapt(fst)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Call(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		v, err := f.Call(ctx, 2)
		if err != nil || v != 4 {
			t.Fatalf("call %d: %v, %v", i, v, err)
		}
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("%d computations for 1 then 30 calls of 2 after rm -rf, want 2", got)
	}
}

// A watch survives the removal of the root: its waiter is woken when its directory
// goes, again when the store has found the re-created root (on a miss) and watches
// it anew, and then by changes another process makes there.
func TestWatchRearmedAfterRootRemoved(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
	dir := t.TempDir()
	s := newStore(t, &filestore.Options{Dir: dir, Clock: clk.Now})
	// k is never written before the removal, so that the removal of its directory is
	// the only event that can wake its waiter then.
	k := store.Key{Namespace: "ns", ID: "k"}
	ch, stop, err := s.Watch(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitWake(t, ch, "the removal of the root")

	// Another process re-creates the root and writes k: nothing watches it there yet.
	other := newStore(t, &filestore.Options{Dir: dir})
	mustSet(t, other, k, "1")
	// s's next miss finds the new root, swaps it in and re-arms the watch, waking its
	// waiter once for what it could not see.
	if _, err := s.Get(ctx, store.Key{Namespace: "ns", ID: "absent"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("the waiter was not woken when the store re-armed the watch")
	}
	mustSet(t, other, k, "2")
	waitWake(t, ch, "a Set by another process in the re-created root")
}
