package cachier

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/store"
)

// The local tier.
//
// LocalTier keeps a function's decoded results in this process, in front of any store,
// bounded by entries and bytes. A local hit makes no store round trip and decodes
// nothing; a local miss takes the usual path (the store, then the cross-process lease).
//
// # Coherence
//
// Every process that writes or invalidates a namespace also writes a small marker
// record in the same store (namespace markerNS, ID "ns:" + the namespace): a random
// value, new at each change. Every bump of a version counter (tags, prefixes,
// DependsOn) writes one more marker, shared by all namespaces ("counters"). A process
// with a local tier reconciles by reading both markers (one batched read):
//
//   - when a marker moved, it drops every local copy filled before the read ended
//     (for the counters marker: every copy that depends on a counter);
//   - when the store notifies a change of a marker (Redis pub/sub, PostgreSQL
//     LISTEN/NOTIFY, fsnotify, the SQL stores' polling watchers: see store.Notifier),
//     the copies the marker covers are dropped at once, and a reconcile starts;
//   - where the store's notifications name the record that changed
//     (store.NamespaceNotifier: PostgreSQL), the notification a change of an entry of
//     the namespace, or of a version counter, sends itself, in the same round trip as
//     the change, drops the copies too, one round trip before the marker's;
//   - a reconcile also starts half a bound after the last one started, by a timer;
//   - a local copy is served only within the bound after the start of the last
//     reconcile that succeeded. A lost notification, a dropped connection or a store
//     that cannot be read therefore never leaves a copy served for longer than the
//     bound after a change: past it, calls read the store.
//
// The granularity is the namespace: a change of one key drops the namespace's local
// copies in every other process. The local tier suits results that are read far more
// often than they are written.
//
// The writer keeps its own copies (its older ones, and those of the values it wrote)
// when, and only when, no other process moved the marker since its tier last read it:
// on a store that can compare and swap (store.Swapper), a writer moves the marker from
// the value its tier last saw (store.CompareAndSet; a batch's in the same round trip
// as its writes where the store can: store.WriteReleaseSwapBatcher). When the swap
// succeeds, nobody else moved the marker in between, and the tier remembers the move
// (own: new value -> old), so that a reconcile that reads the new value, or one that
// read the old value before the swap, drops nothing. When it fails, another process
// moved the marker: the writer moves it anyway (a plain write) and its tier drops its
// copies at its next reconcile, as before. A notification of the marker soon after a
// move of this process's own (ownWakes) may be that move's: it starts a reconcile,
// which drops the copies if the marker holds another process's value, instead of
// dropping them at once. A store that cannot compare and swap keeps the plain write,
// and a writer drops its copies too.
//
// Where the notifications name the changed records (PostgreSQL), each write of an
// entry notifies on its own, the writer's included. The tier writes its entries under
// a writer id of its own (store.WithOrigin: a random id per tier, ownWrites), which
// the store puts in their notifications, and watches the namespace under the same id,
// so that its own writes, whose values it keeps or whose copies it forgets itself, do
// not drop its copies. Every other write, by another process, another store handle or
// another Func of this process, notifies under another id or none, and drops them as
// before: a notification is never skipped for a change the tier did not make.
//
// Every process writing the namespace must use the local tier too (the same Wrap
// options do that), so that its writes move the marker; Invalidate, Clear and every
// counter bump move the markers in every process, with or without a local tier.

// markerNS is the namespace of the coherence markers.
const markerNS = "cachier~tier"

// Default and smallest bound on how long a local copy may be served after a change
// that was not notified.
const (
	defaultTierBound = time.Second
	minTierBound     = time.Millisecond
)

func nsMarker(ns string) store.Key { return store.Key{Namespace: markerNS, ID: "ns:" + ns} }

var countersMarker = store.Key{Namespace: markerNS, ID: "counters"}

// tierSettings configures a Func's local tier (Wrap only).
type tierSettings struct {
	on         bool
	maxEntries int
	maxBytes   int64
	bound      time.Duration
}

// LocalTier keeps up to maxEntries decoded results, whose encodings total at most
// maxBytes, in this process in front of the store (zero or less: no bound of that
// kind, but at least one bound must be set). A local hit makes no store round trip and
// decodes nothing; a miss takes the usual path, including the cross-process lease. A
// write, Overwrite, Refresh, Invalidate, Clear or a tag, prefix or dependency
// invalidation in any process drops the copies in every other process within the
// store's notification latency where it notifies (Redis, PostgreSQL, files), and
// within LocalTierBound everywhere, even when notifications are lost. See the README
// for when to use it. On an in-process store (memstore), which already keeps decoded
// values, it does nothing. Only accepted by Wrap.
func LocalTier(maxEntries int, maxBytes int64) Option {
	return opt("LocalTier", inWrap, func(s *settings) error {
		if maxEntries <= 0 && maxBytes <= 0 {
			return errors.New("set maxEntries or maxBytes (or both) to bound the local tier")
		}
		s.tier.on = true
		s.tier.maxEntries, s.tier.maxBytes = max(maxEntries, 0), max(maxBytes, 0)
		return nil
	})
}

// LocalTierBound sets how long, at most, a local copy may be served after another
// process changed its entry when no notification arrives (default one second): the
// local tier polls the store's change markers every half bound while it is used, and
// stops serving copies when it could not confirm them for a whole bound. It needs
// LocalTier. Only accepted by Wrap.
func LocalTierBound(d time.Duration) Option {
	return opt("LocalTierBound", inWrap, func(s *settings) error {
		if d < minTierBound {
			return fmt.Errorf("bound %v is shorter than %v", d, minTierBound)
		}
		s.tier.bound = d
		return nil
	})
}

// localTier is a Func's local tier: decoded results by argument (or key ID).
type localTier[R any] struct {
	m          sync.Map // tier key -> *localEntry[R]
	mu         sync.Mutex
	n, bytes   atomic.Int64
	maxEntries int64
	maxBytes   int64
	sync       *tierSync
}

type localEntry[R any] struct {
	v     R
	times foundTimes
	gen   uint64 // the settings generation it was filled under
	seq   uint64 // the tier's fill sequence when its read (or write) began
	deps  bool   // it depends on version counters
	size  int64
}

func newLocalTier[R any](ns string, ts tierSettings) *localTier[R] {
	bound := ts.bound
	if bound == 0 {
		bound = defaultTierBound
	}
	return &localTier[R]{
		maxEntries: int64(ts.maxEntries),
		maxBytes:   ts.maxBytes,
		sync:       &tierSync{ns: ns, bound: bound, origin: newTierOrigin()},
	}
}

// tierKey is the key of arg in the local tier: the argument itself when its Go
// equality matches its encoding, else its key's ID.
func (f *Func[A, R]) tierKey(arg A, k store.Key) any {
	if f.digests != nil {
		return arg
	}
	return k.ID
}

// localOn reports whether the local tier serves under s: not on an in-process store.
func (f *Func[A, R]) localOn(s *settings) bool {
	return f.local != nil && store.Scope(s.store) != store.LeasesNone
}

// get returns the local copy of key if it may be served now.
func (t *localTier[R]) get(s *settings, key any) (*localEntry[R], bool) {
	x, ok := t.m.Load(key)
	if !ok {
		return nil, false
	}
	e := x.(*localEntry[R])
	if e.gen != s.gen || !t.sync.valid(e.seq, e.deps) {
		t.drop(key, e)
		return nil, false
	}
	if !t.sync.serving.Load() {
		return nil, false
	}
	return e, true
}

// lookupLocal answers lookup from the local tier.
func (f *Func[A, R]) lookupLocal(s *settings, key any) (found[R], bool) {
	e, ok := f.local.get(s, key)
	if !ok {
		return found[R]{}, false
	}
	return found[R]{v: e.v, foundTimes: e.times}, true
}

// localCall answers a Call without options from the local tier, or reports false.
func (f *Func[A, R]) localCall(r *resolvedSettings, arg A) (R, bool) {
	var zero R
	if r.gen != defaults.gen.Load() || disabled.Load() || f.breaker.opened.Load() != nil {
		return zero, false
	}
	s := &r.s
	e, ok := f.local.get(s, arg)
	if !ok {
		return zero, false
	}
	if limit := s.effectiveLimit(e.times.ttl); limit != 0 || s.mayExpire(&e.times) {
		now := s.clock.Now() // only entries that can go stale pay for the clock
		if limit < 0 || (limit > 0 && now.Sub(e.times.storedAt) >= limit) || s.expired(&e.times, now) {
			return zero, false // stale or expired: the usual path decides
		}
	}
	if s.cleanupEvery > 0 {
		f.maybeCleanup(s)
	}
	f.stats.localHits.Add(1) // counted in Hits too, by the snapshot
	return e.v, true
}

// put keeps a copy, evicting others to stay within the bounds.
func (t *localTier[R]) put(key any, e *localEntry[R]) {
	if t.maxBytes > 0 && e.size > t.maxBytes {
		t.forget(key)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, loaded := t.m.Swap(key, e); loaded {
		o := old.(*localEntry[R])
		t.bytes.Add(e.size - o.size)
	} else {
		t.n.Add(1)
		t.bytes.Add(e.size)
	}
	if t.over() {
		t.m.Range(func(k, v any) bool {
			if k != key && t.m.CompareAndDelete(k, v) {
				t.n.Add(-1)
				t.bytes.Add(-v.(*localEntry[R]).size)
			}
			return t.over()
		})
	}
}

func (t *localTier[R]) over() bool {
	return (t.maxEntries > 0 && t.n.Load() > t.maxEntries) || (t.maxBytes > 0 && t.bytes.Load() > t.maxBytes)
}

func (t *localTier[R]) drop(key any, e *localEntry[R]) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m.CompareAndDelete(key, e) {
		t.n.Add(-1)
		t.bytes.Add(-e.size)
	}
}

func (t *localTier[R]) forget(key any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.m.LoadAndDelete(key); ok {
		t.n.Add(-1)
		t.bytes.Add(-old.(*localEntry[R]).size)
	}
}

// fill keeps what lookup read from the store, if the tier is on.
func (f *Func[A, R]) fillLocal(s *settings, key any, h *found[R], seq uint64, deps bool, size int) {
	f.local.put(key, &localEntry[R]{v: h.v, times: h.foundTimes, gen: s.gen, seq: seq, deps: deps, size: int64(size)})
	f.local.sync.start(s)
}

// tierSync is the coherence state of one local tier. It holds no reference to its
// Func, so that the Func can be collected and stop its watcher.
type tierSync struct {
	ns    string
	bound time.Duration

	seq    atomic.Uint64 // fill sequence
	wmAll  atomic.Uint64 // copies filled with seq < wmAll are dead
	wmDeps atomic.Uint64 // copies with dependencies filled with seq < wmDeps are dead
	until  atomic.Int64  // unix nanos: copies may be served before this
	// serving is until > now, kept by a timer so that a local hit reads no clock.
	serving atomic.Bool
	last    atomic.Int64 // unix nanos: when the last reconcile started
	busy    atomic.Bool  // a reconcile runs
	again   atomic.Bool  // reconcile once more after the running one

	// origin is the writer id of this tier's own writes of its namespace's entries
	// (ownWrites), which its namespace watch skips.
	origin string

	mu               sync.Mutex
	primed           bool
	seenNS, seenCtrs []byte
	// own holds this process's moves of the namespace's marker that a
	// compare-and-swap from a value the tier had seen made (or may have made: one
	// whose outcome is unknown): new value -> the value it replaced.
	own map[string][]byte
	// ownWakes counts the marker notifications that may be this process's own moves
	// (ownWakesPerMove a move); see watchOnce.
	ownWakes       atomic.Int32
	st             store.Store
	clk            Clock
	onReconcile    func()        // for tests: called after each reconcile
	onExpire       func()        // for tests: called after each deadline
	onNotified     func()        // for tests: called after each notification's drop
	retry          chan struct{} // the poll timer asks a watch that failed to start to try again
	timers         clock.Clock
	tick, deadline clock.Timer
	started        bool
	stop           context.CancelFunc
}

func (t *tierSync) valid(seq uint64, deps bool) bool {
	return seq >= t.wmAll.Load() && (!deps || seq >= t.wmDeps.Load())
}

// dropAll kills every copy filled so far.
func (t *tierSync) dropAll() { storeMax(&t.wmAll, t.seq.Add(1)) }

// dropDeps kills every copy filled so far that depends on a counter.
func (t *tierSync) dropDeps() { storeMax(&t.wmDeps, t.seq.Add(1)) }

// start registers the tier with its store and starts watching the markers, once.
func (t *tierSync) start(s *settings) {
	t.mu.Lock()
	if t.started {
		t.mu.Unlock()
		return
	}
	t.started, t.st, t.clk = true, s.store, s.clock
	t.retry = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	tm := s.clock
	t.timers = tm
	// Poll every half bound, whether or not the store notifies: the safety net.
	t.tick = tm.AfterFunc(t.bound/2, func() {
		if ctx.Err() != nil {
			return
		}
		t.kick()
		select {
		case t.retry <- struct{}{}: // a watch that could not start tries again
		default:
		}
		t.mu.Lock()
		t.tick.Reset(t.bound / 2)
		t.mu.Unlock()
	})
	t.stop = func() {
		cancel()
		t.mu.Lock()
		t.tick.Stop()
		if t.deadline != nil {
			t.deadline.Stop()
		}
		t.mu.Unlock()
	}
	t.mu.Unlock()
	register(s.store, t)
	if n, ok := s.store.(store.Notifier); ok {
		go t.watch(ctx, n)
	}
	t.kick()
}

// expire stops serving copies once the bound since the last successful reconcile
// has passed; the deadline timer calls it.
func (t *tierSync) expire() {
	t.mu.Lock()
	clk := t.clk
	t.mu.Unlock()
	if left := time.Duration(t.until.Load() - clk.Now().UnixNano()); left > 0 {
		t.mu.Lock()
		t.deadline.Reset(left)
		t.mu.Unlock()
	} else {
		t.serving.Store(false)
	}
	if t.onExpire != nil {
		t.onExpire()
	}
}

// kick runs a reconcile in the background, or one more after the running one.
func (t *tierSync) kick() {
	t.again.Store(true)
	if !t.busy.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			t.again.Store(false)
			t.reconcile()
			t.busy.Store(false)
			if !t.again.Load() || !t.busy.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// reconcile reads the markers and drops the copies a moved marker covers. Copies are
// served up to a bound after the start of the last reconcile that succeeded.
func (t *tierSync) reconcile() {
	t.mu.Lock()
	st, clk := t.st, t.clk
	t.mu.Unlock()
	start := clk.Now()
	t.last.Store(start.UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), t.bound)
	defer cancel()
	es, errs, err := store.GetMany(ctx, st, []store.Key{nsMarker(t.ns), countersMarker})
	if err == nil {
		for _, e := range errs {
			if e != nil && !errors.Is(e, store.ErrNotFound) {
				err = e
			}
		}
	}
	if err != nil {
		// Copies stop being served at the bound; the next call tries again.
		if t.onReconcile != nil {
			t.onReconcile()
		}
		return
	}
	end := t.seq.Add(1) // every copy filled before the read ended is covered
	t.mu.Lock()
	switch ns := es[0].Value; {
	case t.primed && bytes.Equal(ns, t.seenNS):
	case t.primed && t.ownChain(ns, t.seenNS):
		// Only this process moved the marker since the tier saw it.
		t.seenNS = bytes.Clone(ns)
	case t.primed && t.ownChain(t.seenNS, ns):
		// Read before this process's own move from it: nothing new.
	default:
		storeMax(&t.wmAll, end)
		t.seenNS = bytes.Clone(ns)
		clear(t.own)
	}
	if !t.primed || !bytes.Equal(es[1].Value, t.seenCtrs) {
		storeMax(&t.wmDeps, end)
	}
	t.primed, t.seenCtrs = true, bytes.Clone(es[1].Value)
	t.mu.Unlock()
	storeMax64(&t.until, start.Add(t.bound).UnixNano())
	t.serving.Store(true)
	t.mu.Lock()
	if left := time.Duration(t.until.Load() - clk.Now().UnixNano()); t.deadline == nil {
		t.deadline = t.timers.AfterFunc(left, t.expire)
	} else {
		t.deadline.Reset(left)
	}
	t.mu.Unlock()
	if t.onReconcile != nil {
		t.onReconcile()
	}
}

// watch drops copies and reconciles whenever the store notifies a change of a
// marker. When the store cannot watch now (it is down, a file store's root is gone),
// polling keeps the bound and watching is tried again at each poll; a store that
// cannot watch at all (errors.ErrUnsupported) is only polled.
func (t *tierSync) watch(ctx context.Context, n store.Notifier) {
	for {
		err := t.watchOnce(ctx, n)
		if ctx.Err() != nil || errors.Is(err, errors.ErrUnsupported) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.retry:
		}
	}
}

// watchOnce watches both markers until ctx is done, or fails to start watching.
func (t *tierSync) watchOnce(ctx context.Context, n store.Notifier) error {
	var chans [2]<-chan struct{}
	for i, k := range []store.Key{nsMarker(t.ns), countersMarker} {
		ch, stop, err := n.Watch(ctx, k)
		if err != nil {
			return err
		}
		defer stop()
		chans[i] = ch
	}
	// Where the store's notifications name the record that changed (PostgreSQL), also
	// watch the namespace's entries and the version counters themselves: a change's own
	// notification is sent in the same round trip as the change, one round trip before
	// the marker written after it. Optional: the markers still tell when it cannot.
	// The namespace's entries are watched under the tier's writer id: its own writes,
	// which it reflects itself, do not wake it (ownWrites).
	var direct [2]<-chan struct{} // nil (never ready) when not watched
	if nn, ok := n.(store.NamespaceNotifier); ok {
		for i, ns := range []string{t.ns, store.InternalPrefix} {
			ch, stop, err := nn.WatchNamespace(store.WithOrigin(ctx, t.ns, t.origin), ns)
			if err != nil {
				continue
			}
			defer stop()
			direct[i] = ch
		}
	}
	t.kick() // changes before the watches were confirmed
	for {
		// A notification is sent once the change is in the store, so every copy filled
		// before it arrived may be stale: drop them now rather than after the reconcile's
		// round trip, which then only renews the bound (and drops again what was filled
		// meanwhile, if the marker moved, since that cannot be told from a later change
		// whose notification is lost). A spurious wake-up (a notifier reconnected) only
		// costs misses.
		marker := true
		select {
		case <-ctx.Done():
			return nil
		case <-chans[0]:
			// A wake-up that may be this process's own move is checked by the
			// reconcile started below, which drops the copies if another process
			// moved the marker: one round trip later, only for such a change
			// notified right after a move of this process's own.
			if !t.ownWake() {
				t.dropAll()
			}
		case <-chans[1]:
			t.dropDeps()
		case <-direct[0]:
			t.dropAll()
			marker = false
		case <-direct[1]:
			t.dropDeps()
			marker = false
		}
		if t.onNotified != nil {
			t.onNotified()
		}
		if marker { // a change's own notification is followed by its marker's
			t.kick()
		}
	}
}

// ownWrites returns ctx for this tier's own writes of its namespace's entries, which
// tags their notifications with its writer id where the store can (store.WithOrigin),
// so that its namespace watch skips them. Only for writes whose outcome the tier
// reflects itself: it keeps the value written, or forgets the key's copy (keepLocal).
func (t *tierSync) ownWrites(ctx context.Context) context.Context {
	return store.WithOrigin(ctx, t.ns, t.origin)
}

// newTierOrigin returns a writer id no other tier, in this process or another, has.
func newTierOrigin() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// ownChain reports whether this process's own moves (t.own) lead from the marker
// value from to the value to: each was a compare-and-swap, so no other process moved
// the marker in between. Called with t.mu held.
func (t *tierSync) ownChain(to, from []byte) bool {
	for range len(t.own) {
		prev, ok := t.own[string(to)]
		if !ok {
			return false
		}
		if bytes.Equal(prev, from) {
			return true
		}
		to = prev
	}
	return false
}

// maxOwn bounds t.own: forgetting a move only makes the writer drop its copies.
const maxOwn = 64

// ownWakesPerMove is how many wake-ups of the marker's watch one move may bring: the
// Store's own, and the driver's for each of the Store's two watches of the key (the
// entry and its lease record; on Redis both are woken by the one PUBLISH). Coalesced
// wake-ups leave some uncounted: the next notifications of another process's change,
// up to that many, are checked by a reconcile instead of dropping at once.
const ownWakesPerMove = 3

// moveNS moves the namespace's marker after a write or an invalidation of this
// process on st, which already made this tier's copies reflect it, so that other
// processes drop theirs; it keeps this tier's copies when that is coherent (see
// Coherence above).
func (t *tierSync) moveNS(ctx context.Context, st store.Store, timeout time.Duration) error {
	k := nsMarker(t.ns)
	from, e, ok := t.beginOwnMove(st)
	if !ok {
		return moveMarker(ctx, st, timeout, k)
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	swapped, err := store.CompareAndSet(sctx, st, k, from, e)
	cancel()
	if err != nil {
		// Whether the swap happened is unknown; if it did, own says rightly what it
		// replaced.
		return fmt.Errorf("cachier: tell local tiers (%s): %w", k, err)
	}
	if t.endOwnMove(from, e, swapped) {
		return nil
	}
	// Another process moved the marker since this tier read it: a plain move, and
	// this tier's next reconcile drops its copies.
	return moveMarker(ctx, st, timeout, k)
}

// beginOwnMove prepares a move of the namespace's marker on st by compare-and-swap
// from the value the tier last saw, from, to e's, and records it in own before it is
// made (a reconcile may read its value first). ok is false when the tier cannot
// keep its copies on st (not primed, another store, no store.Swapper): the caller
// moves the marker with a plain write.
func (t *tierSync) beginOwnMove(st store.Store) (from []byte, e store.Entry, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.primed || !sameStore(st, t.st) || !store.CanCompareAndSet(st) {
		return nil, store.Entry{}, false
	}
	from, e = t.seenNS, markerEntry()
	if t.own == nil || len(t.own) >= maxOwn {
		t.own = map[string][]byte{}
	}
	t.own[string(e.Value)] = from
	if t.ownWakes.Add(ownWakesPerMove) > ownWakesPerMove*maxOwn {
		t.ownWakes.Store(ownWakesPerMove * maxOwn)
	}
	return from, e, true
}

// endOwnMove records the outcome of a move that beginOwnMove prepared, and reports
// whether it swapped; when it did not, the caller moves the marker with a plain write.
func (t *tierSync) endOwnMove(from []byte, e store.Entry, swapped bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !swapped {
		delete(t.own, string(e.Value)) // never written
	} else if bytes.Equal(t.seenNS, from) {
		t.seenNS = e.Value
	}
	return swapped
}

// sameStore reports whether a and b are known to be the same store.
func sameStore(a, b store.Store) bool {
	ka, ok := tierStoreKey(a)
	if !ok {
		return false
	}
	kb, ok := tierStoreKey(b)
	return ok && ka == kb
}

// ownWake reports whether a notification of the namespace's marker may be one of
// this process's own moves, and counts it.
func (t *tierSync) ownWake() bool {
	for {
		n := t.ownWakes.Load()
		if n <= 0 {
			return false
		}
		if t.ownWakes.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func storeMax64(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}

// Markers.

// markersOn reports whether changes on st must move the markers: every store but the
// in-process ones, which no other process sees.
func markersOn(st store.Store) bool { return store.Scope(st) != store.LeasesNone }

// moveMarker writes a new value to the marker k, so that local tiers elsewhere drop
// their copies.
func moveMarker(ctx context.Context, st store.Store, timeout time.Duration, k store.Key) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := st.Set(ctx, k, markerEntry()); err != nil {
		return fmt.Errorf("cachier: tell local tiers (%s): %w", k, err)
	}
	return nil
}

// markerEntry is a new value of a marker.
func markerEntry() store.Entry {
	b := make([]byte, 8)
	v := store.NewVersion()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return store.Entry{Value: b, StoredAt: time.Now()}
}

// changedNS moves the namespace's marker after a write or an invalidation, and drops
// the copies of the other local tiers of this process on the same store and namespace.
// self, if not nil, is the local tier of the Func that made the change, whose copies
// already reflect it: it keeps them when it can (tierSync.moveNS).
func changedNS(ctx context.Context, s *settings, ns string, self *tierSync) error {
	if !markersOn(s.store) {
		return nil
	}
	droppedNS(s, ns, self)
	if self != nil && self.ns == ns {
		return self.moveNS(ctx, s.store, s.storeTimeout)
	}
	return moveMarker(ctx, s.store, s.storeTimeout, nsMarker(ns))
}

// droppedNS is changedNS's part in this process: the copies of the other local tiers
// of this process on the same store and namespace are dropped. A batch whose marker
// moved with its writes (store.WriteReleaseBatcher) calls it alone.
func droppedNS(s *settings, ns string, self *tierSync) {
	forEachTier(s.store, func(t *tierSync) {
		if t != self && t.ns == ns {
			t.dropAll()
		}
	})
}

// changedCounters moves the counters marker after a bump, and drops the copies with
// dependencies of every local tier of this process on the store.
func changedCounters(ctx context.Context, st store.Store, timeout time.Duration) error {
	if !markersOn(st) {
		return nil
	}
	forEachTier(st, func(t *tierSync) { t.dropDeps() })
	return moveMarker(ctx, st, timeout, countersMarker)
}

// The tiers of this process, by store, so that a change made through one Func or by a
// package-level invalidation reaches the others at once.
var tiers struct {
	mu sync.Mutex
	m  map[any][]weak.Pointer[tierSync]
}

func tierStoreKey(st store.Store) (any, bool) {
	d := store.Unwrap(st)
	if d == nil || !reflect.TypeOf(d).Comparable() {
		return nil, false
	}
	return d, true
}

func register(st store.Store, t *tierSync) {
	k, ok := tierStoreKey(st)
	if !ok {
		return
	}
	tiers.mu.Lock()
	defer tiers.mu.Unlock()
	if tiers.m == nil {
		tiers.m = map[any][]weak.Pointer[tierSync]{}
	}
	live := tiers.m[k][:0]
	for _, w := range tiers.m[k] {
		if w.Value() != nil {
			live = append(live, w)
		}
	}
	tiers.m[k] = append(live, weak.Make(t))
}

func forEachTier(st store.Store, fn func(*tierSync)) {
	k, ok := tierStoreKey(st)
	if !ok {
		return
	}
	tiers.mu.Lock()
	ws := append([]weak.Pointer[tierSync](nil), tiers.m[k]...)
	tiers.mu.Unlock()
	for _, w := range ws {
		if t := w.Value(); t != nil {
			fn(t)
		}
	}
}

// shutdown stops the tier's watcher and timers; it stops serving copies.
func (t *tierSync) shutdown() {
	t.serving.Store(false)
	t.mu.Lock()
	stop := t.stop
	t.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// stopWithFunc stops t's watcher once f is collected.
func stopWithFunc[A, R any](f *Func[A, R], t *tierSync) {
	runtime.AddCleanup(f, func(t *tierSync) { t.shutdown() }, t)
}

// wroteLocal keeps the value just written (err == nil) as the local copy, and moves
// the namespace's marker so that other processes drop theirs.
func (f *Func[A, R]) wroteLocal(ctx context.Context, s *settings, k store.Key, arg A, v R, e store.Entry, seq uint64, err error) {
	if !f.keepLocal(s, k, arg, v, e, seq, err) {
		return
	}
	if err := changedNS(ctx, s, f.ns, f.local.sync); err != nil {
		_ = f.storeFailed(ctx, s, "mark", k, err)
	}
}

// keepLocal is wroteLocal without moving the marker, which a batch moves once for all
// its writes: it keeps the value written as the local copy, or forgets the copy when
// the write failed (err != nil). It reports whether it kept it.
func (f *Func[A, R]) keepLocal(s *settings, k store.Key, arg A, v R, e store.Entry, seq uint64, err error) bool {
	key := f.tierKey(arg, k)
	if err != nil {
		f.local.forget(key)
		return false
	}
	meta, merr := envelope.Peek(e.Value)
	if merr != nil {
		f.local.forget(key)
		return false
	}
	h := found[R]{v: v, foundTimes: foundTimes{storedAt: e.StoredAt, expiresAt: e.ExpiresAt, ttl: meta.TTL}}
	f.fillLocal(s, key, &h, seq, f.hasDeps(meta.Deps), len(e.Value))
	return true
}
