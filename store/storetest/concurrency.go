package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

func testConcurrentAcquire(e *env) {
	ns := e.ns()
	for round := range 3 {
		k := store.Key{Namespace: ns, ID: fmt.Sprint("k", round)}
		const n = 16
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			wins   atomic.Int32
			mu     sync.Mutex
			errs   []error
			winner store.Lease
		)
		for i := range n {
			wg.Go(func() {
				o := owner(fmt.Sprint("g", i))
				<-start
				l, err := e.s.Acquire(e.ctx, k, o, longTTL)
				switch {
				case err == nil:
					wins.Add(1)
					mu.Lock()
					winner = l
					mu.Unlock()
				case !errors.Is(err, store.ErrLeaseHeld):
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			e.t.Errorf("concurrent Acquire: %v; want nil or an error matching store.ErrLeaseHeld", err)
		}
		if w := wins.Load(); w != 1 {
			e.t.Fatalf("round %d: %d of %d concurrent Acquires won, want exactly 1", round, w, n)
		}
		// The winner really holds it.
		if _, err := e.s.Renew(e.ctx, winner, longTTL); err != nil {
			e.t.Errorf("Renew by the winner: %v", err)
		}
		e.wantHeld(k, owner("late"))
	}
}

func testConcurrentSetGet(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	// Values of different lengths and contents, so a torn write shows up as a mix.
	values := [][]byte{
		bytes.Repeat([]byte{'a'}, 64<<10),
		bytes.Repeat([]byte{'b'}, 48<<10),
		patterned(80<<10, 9),
		[]byte("tiny"),
	}
	e.set(k, values[0], time.Now())
	const writers, readers, rounds = 2, 3, 40
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	errc := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				v := values[(w+i)%len(values)]
				if err := e.s.Set(ctx, k, store.Entry{Value: v, StoredAt: time.Now()}); err != nil {
					errc <- fmt.Errorf("concurrent Set: %w", err)
					return
				}
			}
		})
	}
	var done atomic.Bool
	for range readers {
		wg.Go(func() {
			for i := 0; i < rounds*4 && !done.Load(); i++ {
				got, err := e.s.Get(ctx, k)
				if err != nil {
					errc <- fmt.Errorf("Get during concurrent Sets: %w", err)
					return
				}
				ok := false
				for _, v := range values {
					ok = ok || bytes.Equal(got.Value, v)
				}
				if !ok {
					errc <- fmt.Errorf("Get during concurrent Sets returned %s, which is none of the values written", describe(got.Value))
					return
				}
			}
		})
	}
	wg.Wait()
	done.Store(true)
	close(errc)
	for err := range errc {
		e.t.Error(err)
	}
}

func testConcurrentDistinctKeys(e *env) {
	ns := e.ns()
	const goroutines, perG = 8, 16
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				k := store.Key{Namespace: ns, ID: fmt.Sprintf("g%d-k%d", g, i)}
				if err := e.s.Set(e.ctx, k, store.Entry{Value: fmt.Appendf(nil, "%d/%d", g, i), StoredAt: time.Now()}); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		e.t.Fatalf("concurrent Set on distinct keys: %v", err)
	}
	for g := range goroutines {
		for i := range perG {
			e.wantValue(store.Key{Namespace: ns, ID: fmt.Sprintf("g%d-k%d", g, i)}, fmt.Appendf(nil, "%d/%d", g, i))
		}
	}
	if !e.caps.NoListing {
		if n := len(e.entryIDs(ns)); n != goroutines*perG {
			e.t.Errorf("Entries lists %d, want %d", n, goroutines*perG)
		}
	}
}

// testCancelledContext checks that every method returns an error, promptly, when its
// context is already cancelled.
func testCancelledContext(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	e.set(k, []byte("v"), time.Now())
	held := e.acquire(store.Key{Namespace: ns, ID: "held"}, owner("a"), longTTL)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	first := func(seq func(func(store.Lease, error) bool)) error {
		for _, err := range seq {
			return err
		}
		return nil
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := e.s.Get(ctx, k); return err }},
		{"Set", func() error { return e.s.Set(ctx, k, store.Entry{Value: []byte("w"), StoredAt: time.Now()}) }},
		{"Delete", func() error { return e.s.Delete(ctx, k) }},
		{"Clear", func() error { return e.s.Clear(ctx, ns) }},
		{"DeleteBefore", func() error { _, err := e.s.DeleteBefore(ctx, ns, time.Now()); return err }},
		{"Entries", func() error {
			for _, err := range e.s.Entries(ctx, ns) {
				return err
			}
			return nil
		}},
		{"Namespaces", func() error { _, err := e.s.Namespaces(ctx); return err }},
		{"Acquire", func() error {
			_, err := e.s.Acquire(ctx, store.Key{Namespace: ns, ID: "free"}, owner("b"), longTTL)
			return err
		}},
		{"Renew", func() error { _, err := e.s.Renew(ctx, held, longTTL); return err }},
		{"Release", func() error { return e.s.Release(ctx, held) }},
		{"Leases", func() error { return first(e.s.Leases(ctx, ns)) }},
		{"ReleaseAll", func() error { _, err := e.s.ReleaseAll(ctx, ns); return err }},
	}
	if ls, ok := e.s.(store.LiveStore); ok {
		calls = append(calls,
			struct {
				name string
				call func() error
			}{"GetLive", func() error { _, _, err := ls.GetLive(ctx, k); return err }},
			struct {
				name string
				call func() error
			}{"SetLive", func() error { return ls.SetLive(ctx, k, store.Entry{Value: []byte("w")}, 1) }},
		)
	}
	if n, ok := e.s.(store.Notifier); ok {
		calls = append(calls, struct {
			name string
			call func() error
		}{"Watch", func() error {
			_, stop, err := n.Watch(ctx, k)
			if err == nil && stop != nil {
				stop()
			}
			return err
		}})
	}
	for _, c := range calls {
		errc := make(chan error, 1)
		go func() { errc <- c.call() }()
		select {
		case err := <-errc:
			switch {
			case err == nil:
				e.t.Errorf("%s with a cancelled context returned nil; want an error", c.name)
			case !errors.Is(err, context.Canceled):
				e.t.Logf("%s with a cancelled context: %v (does not match context.Canceled)", c.name, err)
			}
		case <-time.After(eventually):
			e.t.Errorf("%s with a cancelled context did not return within %s", c.name, eventually)
		}
	}
	// The store still works with a live context.
	if _, err := e.s.Get(e.ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("Get after cancelled calls: %v", err)
	}
}

// ---- optional interfaces ----

// run runs fn as a subtest with its own env, so that failures are reported by (and
// FailNow is called from) the subtest's goroutine.
func (e *env) run(name string, fn func(*env)) {
	e.t.Run(name, func(t *testing.T) {
		sub := *e
		sub.t = t
		fn(&sub)
	})
}

func testNotifier(e *env) {
	n, ok := e.s.(store.Notifier)
	if !ok {
		e.t.Skip("store does not implement store.Notifier")
	}
	ns := e.ns()
	watch := func(e *env, k store.Key) (<-chan struct{}, func()) {
		e.t.Helper()
		ch, stop, err := n.Watch(e.ctx, k)
		if err != nil {
			e.t.Fatalf("Watch(%q): %v", k, err)
		}
		e.t.Cleanup(stop)
		return ch, stop
	}
	wake := func(e *env, what string, ch <-chan struct{}) {
		e.t.Helper()
		select {
		case <-ch:
		case <-time.After(eventually):
			e.t.Errorf("no wake-up within %s after %s", eventually, what)
		}
	}

	e.run("Set", func(e *env) {
		k := store.Key{Namespace: ns, ID: "set"}
		ch, _ := watch(e, k)
		go func() { _ = e.s.Set(e.ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}) }()
		wake(e, "Set", ch)
	})
	e.run("Delete", func(e *env) {
		k := store.Key{Namespace: ns, ID: "delete"}
		e.set(k, []byte("v"), time.Now())
		ch, _ := watch(e, k)
		go func() { _ = e.s.Delete(e.ctx, k) }()
		wake(e, "Delete", ch)
	})
	e.run("Clear", func(e *env) {
		if !e.clears {
			return
		}
		cns := e.ns()
		k := store.Key{Namespace: cns, ID: "clear"}
		e.set(k, []byte("v"), time.Now())
		ch, _ := watch(e, k)
		go func() { _ = e.s.Clear(e.ctx, cns) }()
		wake(e, "Clear", ch)
	})
	e.run("Release", func(e *env) {
		k := store.Key{Namespace: ns, ID: "release"}
		l := e.acquire(k, owner("a"), longTTL)
		ch, _ := watch(e, k)
		go func() { _ = e.s.Release(e.ctx, l) }()
		wake(e, "Release", ch)
	})
	e.run("SendsNeverBlock", func(e *env) {
		k := store.Key{Namespace: ns, ID: "flood"}
		ch, _ := watch(e, k)
		done := make(chan error, 1)
		go func() {
			for i := range 100 {
				if err := e.s.Set(e.ctx, k, store.Entry{Value: fmt.Appendf(nil, "%d", i), StoredAt: time.Now()}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil {
				e.t.Fatalf("Set with an unread watcher: %v", err)
			}
		case <-time.After(6 * eventually):
			e.t.Fatalf("100 Sets with an unread watcher did not finish within %s: do sends block?", 6*eventually)
		}
		wake(e, "100 Sets", ch) // at least one value is pending
	})
	e.run("StopAndCancelDoNotLeak", func(e *env) {
		k := store.Key{Namespace: ns, ID: "leak"}
		const rounds = 200
		settle := func() int {
			runtime.GC()
			return runtime.NumGoroutine()
		}
		base := settle()
		for range rounds {
			_, stop, err := n.Watch(e.ctx, k)
			if err != nil {
				e.t.Fatal(err)
			}
			stop()
			stop() // stopping twice is harmless
		}
		for range rounds {
			ctx, cancel := context.WithCancel(e.ctx)
			if _, _, err := n.Watch(ctx, k); err != nil {
				e.t.Fatal(err)
			}
			cancel()
		}
		// Goroutines end asynchronously; poll rather than time it.
		deadline := time.Now().Add(eventually)
		for {
			now := settle()
			if now < base+rounds/4 {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("goroutines grew from %d to %d after %d stopped and %d cancelled watches", base, now, rounds, rounds)
			}
			time.Sleep(pollEvery)
		}
		// After stop, changes must not panic or block.
		if err := e.s.Set(e.ctx, k, store.Entry{Value: []byte("after"), StoredAt: time.Now()}); err != nil {
			e.t.Fatal(err)
		}
	})
}

func testLiveStore(e *env) {
	ls, ok := e.s.(store.LiveStore)
	if !ok {
		e.t.Skip("store does not implement store.LiveStore")
	}
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	type decoded struct{ n int }
	live := &decoded{n: 42}
	if err := ls.SetLive(e.ctx, k, store.Entry{Value: []byte("42"), StoredAt: time.Now()}, live); err != nil {
		e.t.Fatalf("SetLive: %v", err)
	}
	got, v, err := ls.GetLive(e.ctx, k)
	if err != nil {
		e.t.Fatalf("GetLive: %v", err)
	}
	if v != any(live) {
		e.t.Errorf("GetLive live value = %#v, want the pointer given to SetLive", v)
	}
	if !bytes.Equal(got.Value, []byte("42")) {
		e.t.Errorf("GetLive bytes = %s, want \"42\"", describe(got.Value))
	}
	e.wantValue(k, []byte("42")) // Get after SetLive returns the bytes

	// A plain Set must drop the live value: a stale one would be a wrong answer.
	e.set(k, []byte("43"), time.Now())
	got, v, err = ls.GetLive(e.ctx, k)
	if err != nil {
		e.t.Fatalf("GetLive after Set: %v", err)
	}
	if v != nil {
		e.t.Errorf("GetLive after a plain Set returned live value %#v, want nil", v)
	}
	if !bytes.Equal(got.Value, []byte("43")) {
		e.t.Errorf("GetLive after Set bytes = %s, want \"43\"", describe(got.Value))
	}

	// SetLive again, then Delete: no live value survives.
	if err := ls.SetLive(e.ctx, k, store.Entry{Value: []byte("44"), StoredAt: time.Now()}, &decoded{n: 44}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.Delete(e.ctx, k); err != nil {
		e.t.Fatal(err)
	}
	if _, v, err := ls.GetLive(e.ctx, k); !errors.Is(err, store.ErrNotFound) || v != nil {
		e.t.Errorf("GetLive after Delete = %#v, %v; want nil, ErrNotFound", v, err)
	}
	// And Clear.
	if !e.clears {
		return
	}
	if err := ls.SetLive(e.ctx, k, store.Entry{Value: []byte("45"), StoredAt: time.Now()}, &decoded{n: 45}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.Clear(e.ctx, ns); err != nil {
		e.t.Fatal(err)
	}
	if _, v, err := ls.GetLive(e.ctx, k); !errors.Is(err, store.ErrNotFound) || v != nil {
		e.t.Errorf("GetLive after Clear = %#v, %v; want nil, ErrNotFound", v, err)
	}
	// A nil live value is allowed and reads back as nil.
	if err := ls.SetLive(e.ctx, k, store.Entry{Value: []byte("46"), StoredAt: time.Now()}, nil); err != nil {
		e.t.Fatal(err)
	}
	if _, v, err := ls.GetLive(e.ctx, k); err != nil || v != nil {
		e.t.Errorf("GetLive after SetLive(nil) = %#v, %v; want nil, nil", v, err)
	}
}

// testConcurrentTakeover: many callers find the same expired lease at once; exactly
// one of them may take it over. (A filter-then-write takeover that is not one atomic
// operation on the engine lets several win, as FerretDB's update did.)
func testConcurrentTakeover(e *env) {
	ns := e.ns()
	for round := range 3 {
		k := store.Key{Namespace: ns, ID: fmt.Sprint("k", round)}
		e.expire(e.acquire(k, owner("dead"), 200*time.Millisecond))
		const n = 16
		w := race(n, func(i int) bool {
			_, err := e.s.Acquire(e.ctx, k, owner(fmt.Sprint("taker", round, i)), longTTL)
			if err != nil && !errors.Is(err, store.ErrLeaseHeld) {
				e.t.Errorf("concurrent takeover: %v", err)
			}
			return err == nil
		})
		if w != 1 {
			e.t.Fatalf("round %d: %d of %d callers took over the same expired lease, want exactly 1", round, w, n)
		}
	}
}

// race runs f(0) to f(n-1) in n goroutines released at once, and returns how many
// of them won (returned true): the one shape of every "exactly one of many
// concurrent callers" check.
func race(n int, f func(i int) bool) int {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		wins  atomic.Int32
	)
	for i := range n {
		wg.Go(func() {
			<-start
			if f(i) {
				wins.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(wins.Load())
}
