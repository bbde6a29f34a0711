package cachier

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// swappingDriver is a plainDriver (no notifications) with its driver's
// compare-and-swap (store.Swapper), which a writer needs to keep its own local
// copies, and which counts the reads of entries of namespace ns.
type swappingDriver struct {
	plainDriver
	ns    string
	reads *atomic.Int64
}

func (s swappingDriver) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	if k.Namespace == s.ns {
		s.reads.Add(1)
	}
	return s.plainDriver.Get(ctx, k)
}

func (s swappingDriver) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	return s.d.(store.Swapper).Swap(ctx, k, old, next)
}

// twoSwappingProcesses is twoProcesses over swappingDrivers; readsA counts a's reads
// of ns.
func twoSwappingProcesses(t *testing.T, ns string) (a, b store.Store, readsA *atomic.Int64) {
	t.Helper()
	open := sharedDir(t)
	readsA = new(atomic.Int64)
	a = store.Adapt(swappingDriver{plainDriver{open(), new(atomic.Bool)}, ns, readsA})
	b = store.Adapt(swappingDriver{plainDriver{open(), new(atomic.Bool)}, ns, new(atomic.Int64)})
	return a, b, readsA
}

// A writer keeps its own local copies across its own write (issue #14: a batch of
// cached arguments and new ones read every cached one from the store again after
// each write), whether the write is a batch's or a single call's; another process's
// write after it still reaches it, and so does one made between the writer's last
// reconcile and its write (its compare-and-swap of the marker fails: it drops).
func TestLocalTierWriterKeepsItsCopies(t *testing.T) {
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single=%v", single), func(t *testing.T) {
			const bound = time.Second
			name := fmt.Sprintf("tier/own-%v", single)
			clk := clock.NewFake(time.Now())
			stA, stB, readsA := twoSwappingProcesses(t, name)
			a, err := WrapBatch(tierBatchFn("a"), Name(name), WithStore(stA), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
			must(t, err)
			fa, err := Wrap(func(_ context.Context, x int) (string, error) { return fmt.Sprintf("a%d", x), nil }, Name(name), WithStore(stA), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
			must(t, err)
			fb, err := Wrap(func(_ context.Context, x int) (string, error) { return fmt.Sprintf("b%d", x), nil }, Name(name), WithStore(stB), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
			must(t, err)
			// A single Func has a tier of its own, which a's writes drop (the other
			// tiers of the process): in single mode, fa reads and writes.
			ts := a.f.local.sync
			if single {
				ts = fa.local.sync
			}
			wait := reconciled(t, ts)
			ctx := context.Background()
			args := func(from, to int) []int {
				var as []int
				for i := from; i <= to; i++ {
					as = append(as, i)
				}
				return as
			}
			// get asks a for args and returns the results and how many entries it read.
			get := func(as ...int) (map[int]string, int64) {
				t.Helper()
				r0 := readsA.Load()
				m := map[int]string{}
				if single {
					for _, x := range as {
						m[x] = tierCall(t, fa, x)
					}
				} else {
					var err error
					m, err = a.Call(ctx, as)
					must(t, err)
				}
				return m, readsA.Load() - r0
			}
			// write has a write one new argument, as a batch or a single call.
			write := func(x int) {
				t.Helper()
				if single {
					if v := tierCall(t, fa, x); v != fmt.Sprintf("a%d", x) {
						t.Fatalf("single call: got %q", v)
					}
					return
				}
				get(x)
			}
			poll := func() { clk.Advance(bound / 2); wait() }

			get(args(1, 10)...) // computed; the tier starts
			wait()              // its first reconcile drops what came before it
			// One more, which has seen the marker a's last write moved (the first may
			// have read it before: a's later writes could not swap from what it saw).
			poll()
			get(args(1, 10)...) // read, kept
			if _, n := get(args(1, 10)...); n != 0 {
				t.Fatalf("warm batch read %d entries, want none", n)
			}
			write(11)
			poll() // reads the marker a's write moved
			if m, n := get(args(1, 11)...); n != 0 || m[1] != "a1" || m[11] != "a11" {
				t.Fatalf("after a's own write and a reconcile, a read %d entries (want none: it keeps its copies): %v", n, m)
			}

			// b's write after a's: a's next reconcile drops its copies.
			must(t, fb.Precache(ctx, 1, "b1"))
			poll()
			if m, _ := get(1, 2); m[1] != "b1" {
				t.Fatalf("after b's write and a reconcile, a got %q, want b's %q", m[1], "b1")
			}

			// b's write between a's last reconcile and a's own write.
			get(args(1, 11)...) // a's copies back
			if _, n := get(args(1, 11)...); n != 0 {
				t.Fatalf("warm batch read %d entries, want none", n)
			}
			must(t, fb.Precache(ctx, 2, "b2"))
			write(12) // its compare-and-swap of the marker fails
			poll()
			if m, _ := get(1, 2); m[2] != "b2" {
				t.Fatalf("after b's write, a's own and a reconcile, a got %q, want b's %q", m[2], "b2")
			}
		})
	}
}

// swapNotifyingDriver is a notifyingDriver with its driver's compare-and-swap.
type swapNotifyingDriver struct{ notifyingDriver }

func (s swapNotifyingDriver) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	return s.d.(store.Swapper).Swap(ctx, k, old, next)
}

// A notification of the marker right after a move of the writer's own (the Store's
// wake-up, then the driver's) does not drop the writer's copies: it only starts a
// reconcile. Once those are counted, another process's change notified drops them at
// once again, before any reconcile has read the marker.
func TestLocalTierOwnNotificationKeepsCopies(t *testing.T) {
	const bound = time.Hour // polling never helps here
	const name = "tier/own-notified"
	clk := clock.NewFake(time.Now())
	open := sharedDir(t)
	nd := swapNotifyingDriver{notifyingDriver{
		plainDriver: plainDriver{open(), new(atomic.Bool)},
		watches:     make(chan watchReg, 8),
		hold:        new(atomic.Pointer[chan struct{}]),
	}}
	stA := store.Adapt(nd)
	stB := store.Adapt(swappingDriver{plainDriver{open(), new(atomic.Bool)}, name, new(atomic.Int64)})
	var ca, cb counted
	fa, err := Wrap(ca.fn, Name(name), WithStore(stA), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	must(t, err)
	fb, err := Wrap(cb.fn, Name(name), WithStore(stB), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	must(t, err)
	ts := fa.local.sync
	wait := reconciled(t, ts)
	notified := make(chan struct{}, 64)
	ts.onNotified = func() { notified <- struct{}{} }
	waitNotified := func() {
		t.Helper()
		select {
		case <-notified:
		case <-time.After(time.Minute): // a deadlock guard
			t.Fatal("no notification handled")
		}
	}
	ctx := context.Background()

	// b writes first, so that a's tier starts on a marker that a never moved.
	v1 := tierCall(t, fb, 1)
	if v := tierCall(t, fa, 1); v != v1 { // read: a's tier starts
		t.Fatalf("got %q, want b's %q", v, v1)
	}
	notify := map[store.Key]chan struct{}{}
	for range 4 { // each marker and its lease record (the Store watches both)
		select {
		case r := <-nd.watches:
			notify[r.k] = r.ch
		case <-time.After(time.Minute): // a deadlock guard
			t.Fatal("the tier did not watch its markers")
		}
	}
	wait()
	untilLocalHit(t, fa, v1, func() { clk.Advance(bound / 2); wait() })

	localHit := func(what string) {
		t.Helper()
		hits := fa.Stats().LocalHits
		if v := tierCall(t, fa, 1); v != v1 || fa.Stats().LocalHits == hits {
			t.Fatalf("%s: got %q, local hit %v; want %q from the local tier", what, v, fa.Stats().LocalHits > hits, v1)
		}
	}
	mark := ts.wmAll.Load()
	tierCall(t, fa, 2) // a's own write: its marker move wakes its watcher through the Store
	waitNotified()
	if ts.wmAll.Load() != mark {
		t.Fatal("the Store's wake-up for a's own move dropped a's copies")
	}
	localHit("after a's own write")
	// The driver's notifications of a's move: one for each of the Store's two watches
	// of the marker (its entry and its lease record).
	sent := 0
	for k, ch := range notify {
		if k.ID != nsMarker(name).ID {
			continue
		}
		sent++
		ch <- struct{}{}
		waitNotified()
		if ts.wmAll.Load() != mark {
			t.Fatalf("the driver's notification of a's own move (watch of %s) dropped a's copies", k)
		}
	}
	if sent != 2 {
		t.Fatalf("the Store watches the marker through %d driver watches, want 2", sent)
	}
	localHit("after the notification of a's own write")

	// b's change, notified: dropped at once, while the marker reads are held.
	gate := make(chan struct{})
	nd.hold.Store(&gate)
	defer close(gate)
	must(t, fb.Precache(ctx, 1, "b's"))
	notify[nsMarker(name)] <- struct{}{}
	waitNotified()
	if ts.wmAll.Load() == mark {
		t.Fatal("b's change, notified, did not drop a's copies at once")
	}
	if v := tierCall(t, fa, 1); v != "b's" {
		t.Fatalf("after b's change was notified, got %q, want b's", v)
	}
	nd.hold.Store(nil)
}
