package cachier

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
)

// plainDriver hides every capability of a driver but the required four (so it gives
// no notifications), and can make reads of the coherence markers fail.
type plainDriver struct {
	d          store.Driver
	failMarker *atomic.Bool
}

func (p plainDriver) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	if k.Namespace == markerNS && p.failMarker.Load() {
		return store.Entry{}, errors.New("plainDriver: marker read fails")
	}
	return p.d.Get(ctx, k)
}
func (p plainDriver) Set(ctx context.Context, k store.Key, e store.Entry) error {
	return p.d.Set(ctx, k, e)
}
func (p plainDriver) Delete(ctx context.Context, k store.Key) error { return p.d.Delete(ctx, k) }
func (p plainDriver) Close() error                                  { return nil }

// The capability it keeps: listing. Counters are the portable layer's, over Get and
// Set.
func (p plainDriver) Entries(ctx context.Context, ns string) iter.Seq2[store.Info, error] {
	return p.d.(store.Lister).Entries(ctx, ns)
}
func (p plainDriver) Namespaces(ctx context.Context) ([]string, error) {
	return p.d.(store.Lister).Namespaces(ctx)
}
func (p plainDriver) Clear(ctx context.Context, ns string) error {
	return p.d.(store.Lister).Clear(ctx, ns)
}
func (p plainDriver) DeleteBefore(ctx context.Context, ns string, t time.Time) (int, error) {
	return p.d.(store.Lister).DeleteBefore(ctx, ns, t)
}

// twoProcesses returns two stores over one directory that share nothing in this
// process (as two processes would), neither of which notifies.
func twoProcesses(t *testing.T) (a, b store.Store, failA *atomic.Bool) {
	t.Helper()
	open := sharedDir(t)
	failA = new(atomic.Bool)
	return store.Adapt(plainDriver{open(), failA}), store.Adapt(plainDriver{open(), new(atomic.Bool)}), failA
}

// sharedDir returns a function that opens a file store over one temporary
// directory, each call a store of its own, as another process's would be.
func sharedDir(t *testing.T) func() store.Driver {
	t.Helper()
	dir := t.TempDir()
	return func() store.Driver {
		fs, err := filestore.New(&filestore.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fs.Close() })
		return fs
	}
}

// reconciled returns a function that waits for the tier's next reconcile to end.
func reconciled(t *testing.T, ts *tierSync) func() {
	done := make(chan struct{}, 64)
	ts.onReconcile = func() { done <- struct{}{} }
	return func() {
		t.Helper()
		select {
		case <-done:
		case <-time.After(time.Minute): // a deadlock guard, not a timing assertion
			t.Fatal("no reconcile")
		}
	}
}

func tierCall(t *testing.T, f *Func[int, string], x int) string {
	t.Helper()
	v, err := f.Call(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLocalTierPollingBound: with no notifications, a change in another process is
// seen once the tier reconciles, half a bound after the last reconcile, and a copy is
// never served past the bound.
func TestLocalTierPollingBound(t *testing.T) {
	const bound = time.Second
	clk := clock.NewFake(time.Now())
	stA, stB, _ := twoProcesses(t)
	var ca, cb counted
	fa, err := Wrap(ca.fn, Name("tier/poll"), WithStore(stA), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := Wrap(cb.fn, Name("tier/poll"), WithStore(stB), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	wait := reconciled(t, fa.local.sync)

	v1 := tierCall(t, fa, 1) // computed, kept locally, first reconcile started
	wait()
	if v := tierCall(t, fa, 1); v != v1 {
		t.Fatalf("got %q, want %q", v, v1)
	}
	// The first reconcile saw fa's own marker for the first time: it dropped the copy.
	if v := tierCall(t, fa, 1); v != v1 || fa.Stats().LocalHits == 0 {
		t.Fatalf("got %q with %d local hits, want %q from the local tier", v, fa.Stats().LocalHits, v1)
	}
	hits := fa.Stats().LocalHits

	v2 := "precached by b"
	if err := fb.Precache(context.Background(), 1, v2); err != nil {
		t.Fatal(err)
	}
	// Within half a bound nothing is polled: the local copy is still served.
	clk.Advance(bound/2 - time.Millisecond)
	if v := tierCall(t, fa, 1); v != v1 {
		t.Fatalf("got %q before the poll was due, want the local %q", v, v1)
	}
	clk.Advance(time.Millisecond)
	tierCall(t, fa, 1) // due: starts the poll
	wait()
	if v := tierCall(t, fa, 1); v != v2 {
		t.Fatalf("after the poll got %q, want b's %q", v, v2)
	}
	if fa.Stats().LocalHits <= hits {
		t.Fatal("no local hits counted")
	}
}

// TestLocalTierBoundHoldsWithoutReconcile: when the markers cannot be read, copies
// stop being served a bound after the last reconcile, and calls read the store.
func TestLocalTierBoundHoldsWithoutReconcile(t *testing.T) {
	const bound = time.Second
	clk := clock.NewFake(time.Now())
	stA, stB, failA := twoProcesses(t)
	var ca, cb counted
	fa, _ := Wrap(ca.fn, Name("tier/bound"), WithStore(stA), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	fb, _ := Wrap(cb.fn, Name("tier/bound"), WithStore(stB), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	wait := reconciled(t, fa.local.sync)
	expired := make(chan struct{}, 64)
	fa.local.sync.onExpire = func() { expired <- struct{}{} }
	v1 := tierCall(t, fa, 1)
	wait()
	tierCall(t, fa, 1)
	if v := tierCall(t, fa, 1); v != v1 || fa.Stats().LocalHits == 0 {
		t.Fatal("the local tier does not serve")
	}
	failA.Store(true) // notifications and polls are lost from now on
	if err := fb.Invalidate(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(bound / 2)
	tierCall(t, fa, 1) // starts a poll, which fails
	wait()
	clk.Advance(bound/2 - time.Millisecond)
	if v := tierCall(t, fa, 1); v != v1 {
		t.Fatalf("got %q within the bound, want the local %q", v, v1)
	}
	clk.Advance(time.Millisecond)
	<-expired // the deadline timer ran
	if v := tierCall(t, fa, 1); v == v1 {
		t.Fatalf("a bound after the last reconcile, the local tier still served %q", v)
	}
}

// TestLocalTierSameProcess: changes made in this process, through the Func or through
// the store, reach the local tier at once.
func TestLocalTierSameProcess(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		opts   []Option
		mutate func(t *testing.T, f, g *Func[int, string], st store.Store)
	}{
		{"Invalidate", nil, func(t *testing.T, f, _ *Func[int, string], _ store.Store) { must(t, f.Invalidate(ctx, 1)) }},
		{"Clear", nil, func(t *testing.T, f, _ *Func[int, string], _ store.Store) { must(t, f.Clear(ctx)) }},
		{"Refresh", nil, func(t *testing.T, f, _ *Func[int, string], _ store.Store) {
			_, err := f.Refresh(ctx, 1)
			must(t, err)
		}},
		{"Overwrite", nil, func(t *testing.T, f, _ *Func[int, string], _ store.Store) {
			_, err := f.Call(ctx, 1, Overwrite())
			must(t, err)
		}},
		{"Precache", nil, func(t *testing.T, f, _ *Func[int, string], _ store.Store) { must(t, f.Precache(ctx, 1, "pre")) }},
		{"another Func's Invalidate", nil, func(t *testing.T, _, g *Func[int, string], _ store.Store) { must(t, g.Invalidate(ctx, 1)) }},
		{"another Func's Refresh", nil, func(t *testing.T, _, g *Func[int, string], _ store.Store) {
			_, err := g.Refresh(ctx, 1)
			must(t, err)
		}},
		{"InvalidateTags", []Option{Tags("tt")}, func(t *testing.T, _, _ *Func[int, string], st store.Store) {
			must(t, InvalidateTags(ctx, st, "tt"))
		}},
		{"InvalidatePrefix", []Option{Prefix(func(int) string { return "pp" })}, func(t *testing.T, _, _ *Func[int, string], st store.Store) {
			must(t, InvalidatePrefix(ctx, st, "pp"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewFake(time.Now())
			fs, err := filestore.New(&filestore.Options{Dir: t.TempDir()})
			must(t, err)
			defer fs.Close()
			st := store.Adapt(plainDriver{fs, new(atomic.Bool)})
			var cf counted
			opts := append([]Option{Name("tier/same/" + tc.name), WithStore(st), WithClock(clk), LocalTier(100, 0), LocalTierBound(time.Hour)}, tc.opts...)
			f, err := Wrap(cf.fn, opts...)
			must(t, err)
			g, err := Wrap(func(context.Context, int) (string, error) { return "from g", nil }, opts...)
			must(t, err)
			wait := reconciled(t, f.local.sync)
			v1 := tierCall(t, f, 1)
			wait()
			tierCall(t, f, 1)
			if v := tierCall(t, f, 1); v != v1 || f.Stats().LocalHits == 0 {
				t.Fatal("the local tier does not serve")
			}
			tc.mutate(t, f, g, st)
			if v := tierCall(t, f, 1); v == v1 {
				t.Fatalf("after %s the local tier served the old %q", tc.name, v)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLocalTierBounds: the tier holds at most maxEntries copies and maxBytes of their
// encodings.
func TestLocalTierBounds(t *testing.T) {
	fs, err := filestore.New(&filestore.Options{Dir: t.TempDir()})
	must(t, err)
	defer fs.Close()
	var c counted
	f, err := Wrap(c.fn, Name("tier/bounds"), WithStore(fs), LocalTier(5, 0))
	must(t, err)
	g, err := Wrap(c.fn, Name("tier/bytes"), WithStore(fs), LocalTier(0, 200))
	must(t, err)
	for i := range 50 {
		tierCall(t, f, i)
		tierCall(t, g, i)
	}
	if n := f.local.n.Load(); n > 5 {
		t.Fatalf("%d entries, bound 5", n)
	}
	if b := g.local.bytes.Load(); b > 200 || b == 0 {
		t.Fatalf("%d bytes, bound 200", b)
	}
}

// TestLocalTierStopsWithClose: Close stops the tier's polling timer and deadline.
func TestLocalTierStopsWithClose(t *testing.T) {
	clk := clock.NewFake(time.Now())
	stA, _, _ := twoProcesses(t)
	var c counted
	f, err := Wrap(c.fn, Name("tier/close"), WithStore(stA), WithClock(clk), LocalTier(10, 0))
	must(t, err)
	wait := reconciled(t, f.local.sync)
	tierCall(t, f, 1)
	wait()
	if n := clk.Timers(); n != 2 {
		t.Fatalf("%d timers while the tier runs, want 2 (poll and deadline)", n)
	}
	must(t, f.Close(context.Background()))
	if n := clk.Timers(); n != 0 {
		t.Fatalf("%d timers after Close, want 0", n)
	}
}

func TestLocalTierOptions(t *testing.T) {
	var c counted
	for _, opts := range [][]Option{
		{LocalTier(0, 0)},
		{LocalTierBound(time.Second)},
		{LocalTier(1, 0), LocalTierBound(0)},
	} {
		if _, err := Wrap(c.fn, append(opts, Name("tier/opts"))...); !errors.Is(err, ErrOption) {
			t.Errorf("Wrap(%v) = %v, want ErrOption", opts, err)
		}
	}
	if _, err := (&Func[int, string]{}).settings([]Option{LocalTier(1, 0)}); err == nil {
		t.Error("LocalTier accepted by Call")
	}
	_ = fmt.Sprint
}

// notifyingDriver is a plainDriver that notifies when the test says so, and whose
// marker reads can be held.
type notifyingDriver struct {
	plainDriver
	watches chan watchReg                  // each Watch, for the test to notify
	hold    *atomic.Pointer[chan struct{}] // when set, marker reads wait until it is closed
	fails   *atomic.Int32                  // so many Watch calls fail first
}

type watchReg struct {
	k  store.Key
	ch chan struct{}
}

func (n notifyingDriver) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	if g := n.hold.Load(); g != nil && k.Namespace == markerNS {
		<-*g
	}
	return n.plainDriver.Get(ctx, k)
}

func (n notifyingDriver) Watch(ctx context.Context, k store.Key) (<-chan struct{}, func(), error) {
	if n.fails != nil && n.fails.Add(-1) >= 0 {
		return nil, nil, errors.New("notifyingDriver: cannot watch now")
	}
	ch := make(chan struct{}, 1)
	n.watches <- watchReg{k, ch}
	return ch, func() {}, nil
}

// TestLocalTierNotificationDropsAtOnce: a notification drops the copies it covers at
// once, before the reconcile it starts has read the markers (one round trip, which
// on a loaded PostgreSQL took milliseconds).
func TestLocalTierNotificationDropsAtOnce(t *testing.T) {
	testLocalTierNotified(t, 0)
}

// TestLocalTierWatchRetried: a watch that could not start (the store was down) is
// tried again at the next poll, and notifications work from then on.
func TestLocalTierWatchRetried(t *testing.T) {
	testLocalTierNotified(t, 1)
}

// testLocalTierNotified checks that a notification drops a copy at once, after the
// first fails calls to Watch failed.
func testLocalTierNotified(t *testing.T, fails int32) {
	const bound = time.Hour // polling never helps here
	clk := clock.NewFake(time.Now())
	open := sharedDir(t)
	nd := notifyingDriver{
		plainDriver: plainDriver{open(), new(atomic.Bool)},
		watches:     make(chan watchReg, 8),
		hold:        new(atomic.Pointer[chan struct{}]),
		fails:       new(atomic.Int32),
	}
	nd.fails.Store(fails)
	stA, stB := store.Adapt(nd), store.Adapt(plainDriver{open(), new(atomic.Bool)})
	var ca, cb counted
	fa, _ := Wrap(ca.fn, Name("tier/notified"), WithStore(stA), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	fb, _ := Wrap(cb.fn, Name("tier/notified"), WithStore(stB), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound))
	wait := reconciled(t, fa.local.sync)
	notified := make(chan struct{}, 64)
	fa.local.sync.onNotified = func() { notified <- struct{}{} }

	v1 := tierCall(t, fa, 1)
	if fails > 0 {
		// Watching failed; only the next poll tries again.
		clk.Advance(bound / 2)
	}
	notify := map[store.Key]chan struct{}{}
	for range 2 {
		select {
		case r := <-nd.watches:
			notify[r.k] = r.ch
		case <-time.After(time.Minute): // a deadlock guard
			t.Fatal("the tier did not watch its markers")
		}
	}
	// Until a local hit: each miss forces one more reconcile (the first ones drop what
	// they find unprimed).
	untilLocalHit(t, fa, v1, func() { clk.Advance(bound / 2); wait() })

	gate := make(chan struct{})
	nd.hold.Store(&gate)
	v2 := "precached by b"
	if err := fb.Precache(context.Background(), 1, v2); err != nil {
		t.Fatal(err)
	}
	// Wake-ups for fa's own marker writes may still be handled late: wait for the drop
	// that covers every copy filled so far.
	ts := fa.local.sync
	mark := ts.seq.Load()
	notify[nsMarker("tier/notified")] <- struct{}{}
	for ts.wmAll.Load() <= mark {
		select {
		case <-notified:
		case <-time.After(time.Minute): // a deadlock guard
			t.Fatal("the notification dropped nothing")
		}
	}
	// No reconcile can have read the markers since the gate was set: the copy was
	// dropped by the notification itself.
	if v := tierCall(t, fa, 1); v != v2 {
		t.Fatalf("notified while the reconcile was still reading, got %q, want %q", v, v2)
	}
	nd.hold.Store(nil)
	close(gate)
}

// nsNotifyingDriver is a notifyingDriver that can also watch namespaces, as
// sqlstore does on PostgreSQL.
type nsNotifyingDriver struct {
	notifyingDriver
	nsWatches chan nsWatchReg
}

type nsWatchReg struct {
	ns string
	ch chan struct{}
}

func (n nsNotifyingDriver) WatchNamespace(ctx context.Context, ns string) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	n.nsWatches <- nsWatchReg{ns, ch}
	return ch, func() {}, nil
}

// TestLocalTierDropsOnChangeNotification: on a store that watches namespaces, the
// notification a change sends itself (of an entry of the namespace, or of a version
// counter) drops the copies it covers, before the change's marker moves: the tier
// does not wait for the marker's own notification, one round trip later.
func TestLocalTierDropsOnChangeNotification(t *testing.T) {
	t.Run("entry", func(t *testing.T) { testLocalTierDirect(t, false) })
	t.Run("counter", func(t *testing.T) { testLocalTierDirect(t, true) })
}

// testLocalTierDirect notifies the namespace of the function's entries, or the
// counters (then the function has a tag, and its copies depend on a counter).
func testLocalTierDirect(t *testing.T, counter bool) {
	const bound = time.Hour // polling never helps here
	clk := clock.NewFake(time.Now())
	open := sharedDir(t)
	nd := nsNotifyingDriver{
		notifyingDriver: notifyingDriver{
			plainDriver: plainDriver{open(), new(atomic.Bool)},
			watches:     make(chan watchReg, 8),
			hold:        new(atomic.Pointer[chan struct{}]),
		},
		nsWatches: make(chan nsWatchReg, 8),
	}
	stA, stB := store.Adapt(nd), store.Adapt(plainDriver{open(), new(atomic.Bool)})
	const name = "tier/direct"
	opts := []Option{Name(name), WithClock(clk), LocalTier(100, 0), LocalTierBound(bound)}
	if counter {
		opts = append(opts, Tags("tier/direct/tag"))
	}
	var ca, cb counted
	fa, _ := Wrap(ca.fn, append(opts, WithStore(stA))...)
	fb, _ := Wrap(cb.fn, append(opts, WithStore(stB))...)
	wait := reconciled(t, fa.local.sync)
	notified := make(chan struct{}, 64)
	fa.local.sync.onNotified = func() { notified <- struct{}{} }

	v1 := tierCall(t, fa, 1)
	direct := map[string]chan struct{}{}
	for range 2 {
		select {
		case r := <-nd.nsWatches:
			direct[r.ns] = r.ch
		case <-time.After(time.Minute): // a deadlock guard
			t.Fatal("the tier did not watch its namespace and the counters")
		}
	}
	untilLocalHit(t, fa, v1, func() { clk.Advance(bound / 2); wait() })

	// The markers cannot be read from now on, and their notifications are not sent:
	// only the change's own notification can drop the copy.
	gate := make(chan struct{})
	nd.hold.Store(&gate)
	defer close(gate)
	v2 := "precached by b"
	if err := fb.Precache(context.Background(), 1, v2); err != nil {
		t.Fatal(err)
	}
	ts := fa.local.sync
	wm, ch := &ts.wmAll, direct[name]
	if counter {
		wm, ch = &ts.wmDeps, direct[store.InternalPrefix]
	}
	mark := ts.seq.Load()
	ch <- struct{}{}
	for wm.Load() <= mark {
		select {
		case <-notified:
		case <-time.After(time.Minute): // a deadlock guard
			t.Fatal("the notification dropped nothing")
		}
	}
	if v := tierCall(t, fa, 1); v != v2 {
		t.Fatalf("after the change's notification, got %q, want %q", v, v2)
	}
	nd.hold.Store(nil)
}

// untilLocalHit calls fa(1), expecting v1, until a call is a local hit; after each
// miss, next moves the tier on (each miss forces one more reconcile, and the first
// ones drop what they find unprimed).
func untilLocalHit(t *testing.T, fa *Func[int, string], v1 string, next func()) {
	t.Helper()
	for {
		hits := fa.Stats().LocalHits
		if v := tierCall(t, fa, 1); v != v1 {
			t.Fatalf("got %q, want %q", v, v1)
		}
		if fa.Stats().LocalHits > hits {
			return
		}
		next()
	}
}
