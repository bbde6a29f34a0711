package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// Generous deadlines for eventual states; no test asserts on how fast they arrive.
const (
	eventually = 10 * time.Second
	pollEvery  = 20 * time.Millisecond
	longTTL    = time.Minute
)

// RunConformanceTests runs the whole suite against the stores newHarness makes.
// caps names what the store cannot do.
func RunConformanceTests(t *testing.T, newHarness func(t *testing.T) Harness, caps Capabilities) {
	t.Helper()
	p := probeStore(t, newHarness)
	if !p.lister {
		caps.NoListing = true
	}
	listing, noListing := !caps.NoListing, caps.NoListing
	tests := []struct {
		name string
		fn   func(*env)
		run  bool // the test applies to this store
	}{
		{"GetMissing", testGetMissing, true},
		{"RoundTrip", testRoundTrip, true},
		{"LargeValues", testLargeValues, true},
		{"StoredAt", testStoredAt, true},
		{"Overwrite", testOverwrite, true},
		{"GetReturnsCallersCopy", testGetReturnsCallersCopy, true},
		{"Delete", testDelete, true},
		{"NamespacesIsolated", testNamespacesIsolated, true},
		{"Clear", testClear, p.clears},
		{"DeleteBefore", testDeleteBefore, listing},
		{"Entries", testEntries, listing},
		{"Namespaces", testNamespaces, listing},
		{"Unsupported", testUnsupported, noListing},
		{"OddKeys", testOddKeys, true},
		{"OddNamespaces", testOddNamespaces, true},
		{"LongKeys", testLongKeys, true},
		{"LeaseAcquire", testLeaseAcquire, true},
		{"LeaseHeld", testLeaseHeld, true},
		{"LeaseRenew", testLeaseRenew, true},
		{"LeaseRelease", testLeaseRelease, true},
		{"LeaseExpiry", testLeaseExpiry, true},
		{"LeaseEmptyToken", testLeaseEmptyToken, true},
		{"Leases", testLeases, listing},
		{"ReleaseAll", testReleaseAll, true},
		{"LeaseBatch", testLeaseBatch, true},
		{"LeaseBatchTakeover", testLeaseBatchTakeover, true},
		{"SwapMany", testSwapMany, p.swapBatch},
		{"LeaseAndEntryIndependent", testLeaseAndEntryIndependent, true},
		{"ConcurrentAcquire", testConcurrentAcquire, true},
		{"ConcurrentTakeover", testConcurrentTakeover, true},
		{"ConcurrentSetGet", testConcurrentSetGet, true},
		{"ConcurrentDistinctKeys", testConcurrentDistinctKeys, true},
		{"CancelledContext", testCancelledContext, true},
		{"Notifier", testNotifier, p.notifier},
		{"LiveStore", testLiveStore, p.live},
		{"Versions", testVersions, true},
		{"GetVersioned", testGetVersioned, true},
		{"Expiry", testExpiry, true},
		{"ReadOrAcquire", testReadOrAcquire, true},
		{"ConcurrentReadOrAcquire", testConcurrentReadOrAcquire, true},
		{"WriteAndRelease", testWriteAndRelease, true},
		{"GetAndCreate", testGetAndCreate, p.roa},
		{"GetOrCreate", testGetOrCreate, p.roc},
		{"ReadOrClaim", testReadOrClaim, true},
		{"SetAndDelete", testSetAndDelete, p.war},
		{"SetAndDeleteMany", testSetAndDeleteMany, p.sadBatch},
	}
	// Tests of capabilities the store does not have are not run at all, rather than
	// skipped, so that a skip always means something is missing (a server, say).
	for _, tc := range tests {
		if !tc.run {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(setup(t, newHarness, caps))
		})
	}
	if p.expirer {
		t.Run("NativeTTL", func(t *testing.T) {
			h := newHarness(t)
			nh, ok := h.(NativeTTLHarness)
			h.Close()
			if !ok {
				t.Fatalf("the driver expires entries natively (store.Expirer), so its harness %T must be a storetest.NativeTTLHarness", h)
			}
			testNativeTTL(setup(t, newHarness, caps), nh)
		})
	}
}

// probe is what the driver under test declares of the optional capabilities.
type probe struct{ notifier, live, lister, clears, expirer, roa, roc, war, swapBatch, sadBatch bool }

func probeStore(t *testing.T, newHarness func(t *testing.T) Harness) probe {
	t.Helper()
	e := setup(t, newHarness, Capabilities{})
	d := store.Unwrap(e.s)
	_, notifier := d.(store.Notifier)
	if pl, ok := d.(store.ProcessLocal); ok && pl.ProcessLocal() {
		notifier = true // every change goes through this process: the portable layer wakes
	}
	_, live := e.s.(store.LiveStore)
	_, lister := d.(store.Lister)
	_, clears := d.(store.Clearer)
	if _, full := d.(store.Store); full {
		lister, clears = true, true // a store of the first contract lists, or says ErrUnsupported itself
	}
	ex, expirer := d.(store.Expirer)
	_, roa := d.(store.ReadOrAcquirer)
	_, roc := d.(store.GetOrCreator)
	_, war := d.(store.WriteAndReleaser)
	_, swapBatch := d.(store.SwapBatcher)
	_, sadBatch := d.(store.SetAndDeleteBatcher)
	return probe{notifier: notifier, live: live, lister: lister, clears: clears, expirer: expirer && ex.ExpiresNatively(), roa: roa, roc: roc, war: war, swapBatch: swapBatch, sadBatch: sadBatch}
}

// env is what one test works with.
type env struct {
	t    *testing.T
	ctx  context.Context
	s    store.Store
	caps Capabilities
	// clk is the clock of the portable layer, which decides leases and expiry.
	clk *clock.Fake
	// clears reports whether the driver can clear a namespace (a store.Clearer, or a
	// store of the first contract); scope is how far its leases reach.
	clears bool
	scope  store.LeaseScope
}

func setup(t *testing.T, newHarness func(t *testing.T) Harness, caps Capabilities) *env {
	t.Helper()
	h := newHarness(t)
	t.Cleanup(h.Close)
	ctx := context.Background()
	d, err := h.MakeStore(ctx, t)
	if err != nil {
		t.Fatalf("MakeStore: %v", err)
	}
	clk := clock.NewFake(time.Now())
	s := store.Adapt(d, store.WithClock(clk))
	_, clears := store.Unwrap(d).(store.Clearer)
	if _, full := store.Unwrap(d).(store.Store); full {
		clears = true
	}
	// Registered before any namespace cleanup, so it runs after them (Cleanup is LIFO).
	// This is also the "Close can be called after use" check.
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close after use: %v", err)
		}
	})
	return &env{t: t, ctx: ctx, s: s, caps: caps, clk: clk, clears: clears, scope: store.Scope(s)}
}

// expire makes the lease l expire: it moves the fake clock past its expiry.
func (e *env) expire(l store.Lease) {
	e.clk.Set(l.ExpiresAt.Add(time.Millisecond))
}

// ns returns a fresh namespace that is cleared (entries and leases) when the test ends.
func (e *env) ns() string {
	return e.track(Namespace(e.t))
}

// track arranges for ns to be cleared when the test ends, and returns it.
func (e *env) track(ns string) string {
	e.t.Helper()
	if err := store.ValidateNamespace(ns); err != nil {
		e.t.Fatalf("storetest built an invalid namespace: %v", err)
	}
	e.t.Cleanup(func() {
		ctx := context.Background()
		if err := e.s.Clear(ctx, ns); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			e.t.Errorf("cleanup: Clear(%q): %v", ns, err)
		}
		if _, err := e.s.ReleaseAll(ctx, ns); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			e.t.Errorf("cleanup: ReleaseAll(%q): %v", ns, err)
		}
	})
	return ns
}

func (e *env) set(k store.Key, v []byte, at time.Time) {
	e.t.Helper()
	if err := e.s.Set(e.ctx, k, store.Entry{Value: v, StoredAt: at}); err != nil {
		e.t.Fatalf("Set(%q): %v", k, err)
	}
}

// mustGet returns the value of k, failing the test on any error.
func (e *env) mustGet(k store.Key) store.Entry {
	e.t.Helper()
	got, err := e.s.Get(e.ctx, k)
	if err != nil {
		e.t.Fatalf("Get(%q): %v", k, err)
	}
	return got
}

// wantValue checks that k holds exactly want.
func (e *env) wantValue(k store.Key, want []byte) {
	e.t.Helper()
	got := e.mustGet(k)
	if !bytes.Equal(got.Value, want) {
		e.t.Errorf("Get(%q) = %s, want %s", k, describe(got.Value), describe(want))
	}
}

// wantMissing checks that k has no entry.
func (e *env) wantMissing(k store.Key) {
	e.t.Helper()
	got, err := e.s.Get(e.ctx, k)
	if !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("Get(%q) = %s, %v; want an error matching store.ErrNotFound", k, describe(got.Value), err)
	}
}

func (e *env) acquire(k store.Key, o store.Owner, ttl time.Duration) store.Lease {
	e.t.Helper()
	l, err := e.s.Acquire(e.ctx, k, o, ttl)
	if err != nil {
		e.t.Fatalf("Acquire(%q, %s): %v", k, o, err)
	}
	return l
}

// wantHeld checks that o cannot acquire k because someone else holds it.
func (e *env) wantHeld(k store.Key, o store.Owner) {
	e.t.Helper()
	l, err := e.s.Acquire(e.ctx, k, o, longTTL)
	if !errors.Is(err, store.ErrLeaseHeld) {
		e.t.Errorf("Acquire(%q, %s) = %+v, %v; want an error matching store.ErrLeaseHeld", k, o, l, err)
		if err == nil {
			_ = e.s.Release(e.ctx, l)
		}
	}
}

// wantFree checks that o can acquire k, and releases it again.
func (e *env) wantFree(k store.Key, o store.Owner) {
	e.t.Helper()
	l, err := e.s.Acquire(e.ctx, k, o, longTTL)
	if err != nil {
		e.t.Errorf("Acquire(%q, %s) on a free key: %v", k, o, err)
		return
	}
	if err := e.s.Release(e.ctx, l); err != nil {
		e.t.Errorf("Release(%q, %s): %v", k, o, err)
	}
}

func (e *env) skipIfNoListing() {
	e.t.Helper()
	if e.caps.NoListing {
		e.t.Skip("store cannot list (Capabilities.NoListing); see Unsupported")
	}
}

// owner returns a distinct owner; token ids are unique per test.
func owner(name string) store.Owner {
	return store.Owner{Host: "storetest-" + name, PID: 4242, Token: name + "-" + randHex(8)}
}

// describe shortens a value for messages.
func describe(v []byte) string {
	if v == nil {
		return "nil"
	}
	if len(v) <= 64 {
		return fmt.Sprintf("%q (%d bytes)", v, len(v))
	}
	return fmt.Sprintf("%q... (%d bytes)", v[:64], len(v))
}

// entryIDs lists the IDs of the entries of ns, failing on any error.
func (e *env) entryIDs(ns string) map[string]store.Info {
	e.t.Helper()
	out := map[string]store.Info{}
	for info, err := range e.s.Entries(e.ctx, ns) {
		if err != nil {
			e.t.Fatalf("Entries(%q): %v", ns, err)
		}
		if info.Key.Namespace != ns {
			e.t.Errorf("Entries(%q) listed %q from another namespace", ns, info.Key)
		}
		if _, dup := out[info.Key.ID]; dup {
			e.t.Errorf("Entries(%q) listed %q twice", ns, info.Key.ID)
		}
		out[info.Key.ID] = info
	}
	return out
}

// leaseIDs lists the leases of ns by ID, failing on any error.
func (e *env) leaseIDs(ns string) map[string]store.Lease {
	e.t.Helper()
	out := map[string]store.Lease{}
	for l, err := range e.s.Leases(e.ctx, ns) {
		if err != nil {
			e.t.Fatalf("Leases(%q): %v", ns, err)
		}
		if l.Key.Namespace != ns {
			e.t.Errorf("Leases(%q) listed %q from another namespace", ns, l.Key)
		}
		out[l.Key.ID] = l
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// ---- entries ----

func testGetMissing(e *env) {
	ns := e.ns()
	id := "missing-" + randHex(4)
	k := store.Key{Namespace: ns, ID: id}
	got, err := e.s.Get(e.ctx, k)
	if !errors.Is(err, store.ErrNotFound) {
		e.t.Fatalf("Get of a missing key = %s, %v; want an error matching store.ErrNotFound", describe(got.Value), err)
	}
	if !strings.Contains(err.Error(), id) {
		e.t.Errorf("Get of a missing key: error %q does not name the key ID %q", err, id)
	}
	if ls, ok := e.s.(store.LiveStore); ok {
		if _, _, err := ls.GetLive(e.ctx, k); !errors.Is(err, store.ErrNotFound) {
			e.t.Errorf("GetLive of a missing key: %v; want an error matching store.ErrNotFound", err)
		}
	}
}

func allBytes() []byte {
	b := make([]byte, 0, 512)
	for i := range 256 {
		b = append(b, byte(i))
	}
	for i := 255; i >= 0; i-- {
		b = append(b, byte(i))
	}
	return b
}

func testRoundTrip(e *env) {
	ns := e.ns()
	now := time.Now()
	cases := []struct {
		id string
		v  []byte
	}{
		{"empty", []byte{}},
		{"one", []byte("x")},
		{"text", []byte("hello, world\n")},
		{"binary", allBytes()},
		{"nul-only", make([]byte, 100)},
		{"utf8", []byte("h\u00e9llo \u6f22\u5b57 \U0001F600")},
		{"not-utf8", []byte{0xff, 0xfe, 0xc3, 0x28, 0x80}},
		{"crlf", []byte("a\r\nb\rc\n")},
	}
	for _, c := range cases {
		e.set(store.Key{Namespace: ns, ID: c.id}, c.v, now)
	}
	for _, c := range cases {
		got := e.mustGet(store.Key{Namespace: ns, ID: c.id})
		if !bytes.Equal(got.Value, c.v) {
			e.t.Errorf("%s: Get = %s, want %s", c.id, describe(got.Value), describe(c.v))
		}
	}
	// A nil value is stored as an empty one.
	k := store.Key{Namespace: ns, ID: "nil"}
	e.set(k, nil, now)
	if got := e.mustGet(k); len(got.Value) != 0 {
		e.t.Errorf("Set of a nil value read back as %s, want empty", describe(got.Value))
	}
}

func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func testLargeValues(e *env) {
	ns := e.ns()
	for _, size := range []int{64 << 10, 1 << 20, 4 << 20} {
		k := store.Key{Namespace: ns, ID: fmt.Sprintf("size-%d", size)}
		v := patterned(size, byte(size>>10))
		err := e.s.Set(e.ctx, k, store.Entry{Value: v, StoredAt: time.Now()})
		mayRefuse := e.caps.MaxValueSize != 0 && size > e.caps.MaxValueSize
		switch {
		case err == nil:
			e.wantValue(k, v)
		case mayRefuse && errors.Is(err, store.ErrTooLarge):
			e.t.Logf("%d bytes refused as documented: %v", size, err)
			e.wantMissing(k)
		case mayRefuse:
			e.t.Errorf("Set of %d bytes (over MaxValueSize %d): %v; want nil or an error matching store.ErrTooLarge",
				size, e.caps.MaxValueSize, err)
		default:
			e.t.Errorf("Set of %d bytes: %v", size, err)
		}
	}
	if e.caps.MaxValueSize != 0 {
		// Exactly the advertised maximum must fit.
		k := store.Key{Namespace: ns, ID: "max"}
		v := patterned(e.caps.MaxValueSize, 7)
		e.set(k, v, time.Now())
		e.wantValue(k, v)
	}
}

func testStoredAt(e *env) {
	ns := e.ns()
	times := map[string]time.Time{
		"now":       time.Now(),
		"utc":       time.Now().UTC(),
		"zone":      time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 5*3600+1800)),
		"west":      time.Date(2001, 12, 31, 23, 59, 59, 999_000_000, time.FixedZone("W", -7*3600)),
		"ms-exact":  time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC),
		"leap-year": time.Date(2028, 2, 29, 12, 0, 0, 500_000, time.UTC),
	}
	for id, at := range times {
		e.set(store.Key{Namespace: ns, ID: id}, []byte(id), at)
	}
	for id, want := range times {
		got := e.mustGet(store.Key{Namespace: ns, ID: id})
		if d := got.StoredAt.Sub(want).Abs(); d >= time.Millisecond {
			e.t.Errorf("%s: StoredAt = %s, want %s to the millisecond (off by %s)",
				id, got.StoredAt.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano), d)
		}
	}
}

func testOverwrite(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	t0 := time.Now().Add(-time.Hour)
	long := patterned(10_000, 1)
	e.set(k, long, t0)
	e.wantValue(k, long)
	// A shorter value must not keep the tail of the longer one.
	t1 := time.Now()
	e.set(k, []byte("short"), t1)
	got := e.mustGet(k)
	if !bytes.Equal(got.Value, []byte("short")) {
		e.t.Errorf("after overwrite Get = %s, want \"short\"", describe(got.Value))
	}
	if d := got.StoredAt.Sub(t1).Abs(); d >= time.Millisecond {
		e.t.Errorf("after overwrite StoredAt = %s, want %s", got.StoredAt, t1)
	}
	e.set(k, []byte{}, t1)
	e.wantValue(k, []byte{})
}

func testGetReturnsCallersCopy(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	e.set(k, []byte("original"), time.Now())
	got := e.mustGet(k)
	for i := range got.Value {
		got.Value[i] = 'X' // the caller owns what Get returned
	}
	e.wantValue(k, []byte("original"))
}

func testDelete(e *env) {
	ns := e.ns()
	k := store.Key{Namespace: ns, ID: "k"}
	other := store.Key{Namespace: ns, ID: "other"}
	e.set(k, []byte("v"), time.Now())
	e.set(other, []byte("o"), time.Now())
	if err := e.s.Delete(e.ctx, k); err != nil {
		e.t.Fatalf("Delete: %v", err)
	}
	e.wantMissing(k)
	if err := e.s.Delete(e.ctx, k); err != nil {
		e.t.Errorf("Delete twice: %v; want nil", err)
	}
	if err := e.s.Delete(e.ctx, store.Key{Namespace: ns, ID: "never-set"}); err != nil {
		e.t.Errorf("Delete of a never-set key: %v; want nil", err)
	}
	e.wantValue(other, []byte("o"))
	// The key can be set again.
	e.set(k, []byte("again"), time.Now())
	e.wantValue(k, []byte("again"))
}

func testNamespacesIsolated(e *env) {
	ns1, ns2 := e.ns(), e.ns()
	k1 := store.Key{Namespace: ns1, ID: "same"}
	k2 := store.Key{Namespace: ns2, ID: "same"}
	e.set(k1, []byte("one"), time.Now())
	e.set(k2, []byte("two"), time.Now())
	e.wantValue(k1, []byte("one"))
	e.wantValue(k2, []byte("two"))
	if err := e.s.Delete(e.ctx, k1); err != nil {
		e.t.Fatalf("Delete: %v", err)
	}
	e.wantMissing(k1)
	e.wantValue(k2, []byte("two"))

	// A namespace that is a prefix of another, and a namespace/ID split that a naive
	// "namespace/id" join would confuse.
	base := e.ns()
	prefixed := e.track(base + "x")
	nested := e.track(base + "/a")
	ka := store.Key{Namespace: base, ID: "a/b"}
	kb := store.Key{Namespace: nested, ID: "b"}
	kc := store.Key{Namespace: prefixed, ID: "a/b"}
	e.set(ka, []byte("base a/b"), time.Now())
	e.set(kb, []byte("nested b"), time.Now())
	e.set(kc, []byte("prefixed a/b"), time.Now())
	e.wantValue(ka, []byte("base a/b"))
	e.wantValue(kb, []byte("nested b"))
	e.wantValue(kc, []byte("prefixed a/b"))
	if !e.clears {
		return
	}
	if err := e.s.Clear(e.ctx, base); err != nil {
		e.t.Fatalf("Clear: %v", err)
	}
	e.wantMissing(ka)
	e.wantValue(kb, []byte("nested b"))
	e.wantValue(kc, []byte("prefixed a/b"))
}

func testClear(e *env) {
	ns, other := e.ns(), e.ns()
	for i := range 5 {
		e.set(store.Key{Namespace: ns, ID: fmt.Sprint("k", i)}, []byte("v"), time.Now())
	}
	ko := store.Key{Namespace: other, ID: "k0"}
	e.set(ko, []byte("other"), time.Now())
	lk := store.Key{Namespace: ns, ID: "k0"}
	holder := owner("holder")
	e.acquire(lk, holder, longTTL)

	if err := e.s.Clear(e.ctx, ns); err != nil {
		e.t.Fatalf("Clear: %v", err)
	}
	for i := range 5 {
		e.wantMissing(store.Key{Namespace: ns, ID: fmt.Sprint("k", i)})
	}
	e.wantValue(ko, []byte("other"))
	e.wantHeld(lk, owner("other")) // Clear leaves leases alone
	if !e.caps.NoListing {
		if ids := e.entryIDs(ns); len(ids) != 0 {
			e.t.Errorf("Entries after Clear = %q, want none", sortedKeys(ids))
		}
	}
	// Clearing an empty or unknown namespace is fine.
	if err := e.s.Clear(e.ctx, ns); err != nil {
		e.t.Errorf("Clear of an empty namespace: %v", err)
	}
	if err := e.s.Clear(e.ctx, Namespace(e.t)); err != nil {
		e.t.Errorf("Clear of an unknown namespace: %v", err)
	}
	// The namespace is usable afterwards.
	e.set(lk, []byte("again"), time.Now())
	e.wantValue(lk, []byte("again"))
}

func testDeleteBefore(e *env) {
	e.skipIfNoListing()
	ns, other := e.ns(), e.ns()
	t0 := time.Now().Truncate(time.Millisecond)
	ages := map[string]time.Duration{
		"old2": -2 * time.Hour,
		"old1": -time.Hour,
		"new0": 0,
		"new1": time.Hour,
	}
	for id, d := range ages {
		e.set(store.Key{Namespace: ns, ID: id}, []byte(id), t0.Add(d))
		e.set(store.Key{Namespace: other, ID: id}, []byte(id), t0.Add(d))
	}
	lk := store.Key{Namespace: ns, ID: "old2"}
	e.acquire(lk, owner("holder"), longTTL)

	n, err := e.s.DeleteBefore(e.ctx, ns, t0.Add(-30*time.Minute))
	if err != nil {
		e.t.Fatalf("DeleteBefore: %v", err)
	}
	if n != 2 {
		e.t.Errorf("DeleteBefore removed %d, want 2", n)
	}
	e.wantMissing(store.Key{Namespace: ns, ID: "old2"})
	e.wantMissing(store.Key{Namespace: ns, ID: "old1"})
	e.wantValue(store.Key{Namespace: ns, ID: "new0"}, []byte("new0"))
	e.wantValue(store.Key{Namespace: ns, ID: "new1"}, []byte("new1"))
	for id := range ages {
		e.wantValue(store.Key{Namespace: other, ID: id}, []byte(id))
	}
	e.wantHeld(lk, owner("other"))

	n, err = e.s.DeleteBefore(e.ctx, ns, t0.Add(-30*time.Minute))
	if err != nil || n != 0 {
		e.t.Errorf("DeleteBefore again = %d, %v; want 0, nil", n, err)
	}
	// "Before" is strict: an entry stored at the cut-off itself stays.
	n, err = e.s.DeleteBefore(e.ctx, ns, t0)
	if err != nil || n != 0 {
		e.t.Errorf("DeleteBefore(t) of an entry stored at exactly t = %d, %v; want 0, nil (kept)", n, err)
	}
	e.wantValue(store.Key{Namespace: ns, ID: "new0"}, []byte("new0"))
	n, err = e.s.DeleteBefore(e.ctx, ns, t0.Add(2*time.Hour))
	if err != nil || n != 2 {
		e.t.Errorf("DeleteBefore of everything = %d, %v; want 2, nil", n, err)
	}
}

func testEntries(e *env) {
	e.skipIfNoListing()
	ns, other := e.ns(), e.ns()
	if ids := e.entryIDs(ns); len(ids) != 0 {
		e.t.Errorf("Entries of a new namespace = %q, want none", sortedKeys(ids))
	}
	t0 := time.Now()
	want := map[string]int{"a": 0, "b": 1, "c/d": 1000, "e f": 70_000}
	for id, size := range want {
		e.set(store.Key{Namespace: ns, ID: id}, patterned(size, 3), t0)
	}
	e.set(store.Key{Namespace: other, ID: "z"}, []byte("z"), t0)
	e.acquire(store.Key{Namespace: ns, ID: "lease-only"}, owner("o"), longTTL)

	got := e.entryIDs(ns)
	if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
		e.t.Errorf("Entries = %q, want %q", sortedKeys(got), sortedKeys(want))
	}
	for id, info := range got {
		if info.Key != (store.Key{Namespace: ns, ID: id}) {
			e.t.Errorf("Entries: Key = %+v", info.Key)
		}
		if size, ok := want[id]; ok && info.Size != int64(size) {
			e.t.Errorf("Entries: %q Size = %d, want %d", id, info.Size, size)
		}
		if d := info.StoredAt.Sub(t0).Abs(); d >= time.Millisecond {
			e.t.Errorf("Entries: %q StoredAt = %s, want %s", id, info.StoredAt, t0)
		}
	}

	// Deleted entries are no longer listed.
	if err := e.s.Delete(e.ctx, store.Key{Namespace: ns, ID: "a"}); err != nil {
		e.t.Fatal(err)
	}
	delete(want, "a")
	if got := e.entryIDs(ns); !slices.Equal(sortedKeys(got), sortedKeys(want)) {
		e.t.Errorf("Entries after Delete = %q, want %q", sortedKeys(got), sortedKeys(want))
	}

	// Stopping early is allowed and must not break the store.
	for _, err := range e.s.Entries(e.ctx, ns) {
		if err != nil {
			e.t.Fatal(err)
		}
		break
	}
	e.wantValue(store.Key{Namespace: ns, ID: "b"}, patterned(1, 3))
}

func testNamespaces(e *env) {
	e.skipIfNoListing()
	withEntry, withLease := e.ns(), e.ns()
	e.set(store.Key{Namespace: withEntry, ID: "k"}, []byte("v"), time.Now())
	e.acquire(store.Key{Namespace: withLease, ID: "k"}, owner("o"), longTTL)
	got, err := e.s.Namespaces(e.ctx)
	if err != nil {
		e.t.Fatalf("Namespaces: %v", err)
	}
	for _, ns := range []string{withEntry, withLease} {
		if !slices.Contains(got, ns) {
			e.t.Errorf("Namespaces does not include %q (got %d namespaces)", ns, len(got))
		}
	}
	seen := map[string]bool{}
	for _, ns := range got {
		if seen[ns] {
			e.t.Errorf("Namespaces lists %q twice", ns)
		}
		seen[ns] = true
	}
}

func testUnsupported(e *env) {
	if !e.caps.NoListing {
		e.t.Skip("store can list")
	}
	ns := e.ns()
	e.set(store.Key{Namespace: ns, ID: "k"}, []byte("v"), time.Now())
	check := func(what string, err error) {
		if !errors.Is(err, errors.ErrUnsupported) {
			e.t.Errorf("%s: %v; want an error matching errors.ErrUnsupported (Capabilities.NoListing)", what, err)
		}
	}
	_, err := e.s.DeleteBefore(e.ctx, ns, time.Now().Add(time.Hour))
	check("DeleteBefore", err)
	_, err = e.s.Namespaces(e.ctx)
	check("Namespaces", err)
	err = nil
	for _, ierr := range e.s.Entries(e.ctx, ns) {
		err = ierr
		break
	}
	check("Entries", err)
	err = nil
	if e.scope == store.LeasesShared { // leases kept in process are listed from there
		for _, ierr := range e.s.Leases(e.ctx, ns) {
			err = ierr
			break
		}
		check("Leases", err)
	}
	if !e.clears {
		check("Clear", e.s.Clear(e.ctx, ns))
	}
	e.wantValue(store.Key{Namespace: ns, ID: "k"}, []byte("v"))
}

// oddIDs are IDs that break naive mappings onto file names, URLs, glob patterns,
// key syntaxes and case-insensitive engines. Each must round-trip and none may
// collide with another.
var oddIDs = []string{
	"../../etc/passwd", "..\\..\\windows", "a/b", "a%2Fb", "a%252Fb", "a_b", "a\\b", "a:b",
	".", "..", "...", "/", "//", "/leading", "trailing/", "./x",
	"key with spaces", " ", "  ", " lead", "trail ",
	"*", "?", "[x]", "{tag}", "{a}b", "a{b}", "$", "$ne", "%", "%%", "%00", "'", "\"", "`", "--", ";", "#", "&x=1",
	"user:42", "user:42:", "user:42::", "\u00e9\u6f22\u5b57", "e\u0301", "\u00e9", "\U0001F600\U0001F680", "\ufeffbom",
	"\t\n", "\r", "\x01\x7f", "\x1b[31m",
	"A", "a", "AB", "Ab", "aB", "ab", "CON", "con", "nul", "prn.txt", "aux",
	"x.tmp", "x.lock", "x.lease", ".lease", "_lease", "__meta", "~x", "-x",
	"+", "a+b", "a b", "a%20b",
}

func testOddKeys(e *env) {
	ns := e.ns()
	for i, id := range oddIDs {
		if err := (store.Key{Namespace: ns, ID: id}).Validate(); err != nil {
			e.t.Fatalf("storetest bug: %q is not a valid ID: %v", id, err)
		}
		e.set(store.Key{Namespace: ns, ID: id}, fmt.Appendf(nil, "value %d of %q", i, id), time.Now())
	}
	for i, id := range oddIDs {
		e.wantValue(store.Key{Namespace: ns, ID: id}, fmt.Appendf(nil, "value %d of %q", i, id))
	}
	if !e.caps.NoListing {
		got := e.entryIDs(ns)
		want := slices.Clone(oddIDs)
		slices.Sort(want)
		if g := sortedKeys(got); !slices.Equal(g, want) {
			e.t.Errorf("Entries of odd keys = %q, want %q", g, want)
		}
	}
	// Leases on odd keys are as distinct as the entries.
	a, b := owner("a"), owner("b")
	for _, id := range []string{"A", "a/b", "..", "*"} {
		e.acquire(store.Key{Namespace: ns, ID: id}, a, longTTL)
	}
	for _, id := range []string{"a", "a%2Fb", ".", "?"} {
		e.wantFree(store.Key{Namespace: ns, ID: id}, b)
	}
	// Deleting one odd key leaves its look-alikes.
	if err := e.s.Delete(e.ctx, store.Key{Namespace: ns, ID: "a"}); err != nil {
		e.t.Fatal(err)
	}
	e.wantMissing(store.Key{Namespace: ns, ID: "a"})
	e.wantValue(store.Key{Namespace: ns, ID: "A"}, fmt.Appendf(nil, "value %d of %q", slices.Index(oddIDs, "A"), "A"))
}

func testOddNamespaces(e *env) {
	base := Namespace(e.t)
	// Random parts first and last, so no namespace is shared with another run.
	var nss []string
	for _, odd := range []string{"../../etc/passwd", "a/b", "a%2Fb", "a\\b", ".", "..", "*", "?", "[x]", "{tag}",
		"user:42", "\u00e9\u6f22\u5b57", "\U0001F600", "\t\n", "A", "a", "key with spaces"} {
		nss = append(nss, base+"/"+odd, odd+"-"+base[len("storetest/"):])
	}
	for i, ns := range nss {
		e.track(ns)
		e.set(store.Key{Namespace: ns, ID: "id"}, fmt.Appendf(nil, "ns %d", i), time.Now())
	}
	for i, ns := range nss {
		e.wantValue(store.Key{Namespace: ns, ID: "id"}, fmt.Appendf(nil, "ns %d", i))
	}
	if !e.caps.NoListing {
		got, err := e.s.Namespaces(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, ns := range nss {
			if !slices.Contains(got, ns) {
				e.t.Errorf("Namespaces does not include %q", ns)
			}
		}
		for _, ns := range nss[:4] {
			if ids := e.entryIDs(ns); len(ids) != 1 {
				e.t.Errorf("Entries(%q) = %q, want [id]", ns, sortedKeys(ids))
			}
		}
	}
	// Clearing one clears only it.
	if !e.clears {
		return
	}
	if err := e.s.Clear(e.ctx, nss[0]); err != nil {
		e.t.Fatal(err)
	}
	e.wantMissing(store.Key{Namespace: nss[0], ID: "id"})
	for i, ns := range nss[1:] {
		e.wantValue(store.Key{Namespace: ns, ID: "id"}, fmt.Appendf(nil, "ns %d", i+1))
	}
}

func testLongKeys(e *env) {
	ns := e.ns()
	long := strings.Repeat("x", store.MaxIDLen)
	ids := []string{
		long,
		long[:store.MaxIDLen-1] + "y", // differs only in its last byte
		"y" + long[1:],                // differs only in its first byte
		strings.Repeat("\u00e9", store.MaxIDLen/2),              // 500 bytes, 250 runes
		strings.Repeat("\U0001F600", store.MaxIDLen/4),          // 500 bytes, 125 runes
		strings.Repeat("/", store.MaxIDLen),                     // all separators
		strings.Repeat("../", store.MaxIDLen/3),                 // traversal, repeated
		strings.Repeat("%", store.MaxIDLen),                     // all escapes
		strings.Repeat("A", store.MaxIDLen-1) + "a",             // case at the end
		strings.Repeat("A", store.MaxIDLen),                     // ... and without
		strings.Repeat("ab", store.MaxIDLen/2)[:store.MaxIDLen], // periodic
	}
	for i, id := range ids {
		k := store.Key{Namespace: ns, ID: id}
		if err := k.Validate(); err != nil {
			e.t.Fatalf("storetest bug: %v", err)
		}
		e.set(k, fmt.Appendf(nil, "long %d", i), time.Now())
	}
	for i, id := range ids {
		e.wantValue(store.Key{Namespace: ns, ID: id}, fmt.Appendf(nil, "long %d", i))
	}

	// Namespaces of exactly MaxNamespaceLen bytes, differing only at the end.
	pad := func(s string, last string) string {
		return s + strings.Repeat("n", store.MaxNamespaceLen-len(s)-len(last)) + last
	}
	base := Namespace(e.t)
	if len(base) > store.MaxNamespaceLen-2 {
		base = base[:store.MaxNamespaceLen-2]
	}
	ns1 := e.track(pad(base, "1"))
	ns2 := e.track(pad(base, "2"))
	ns3 := e.track(pad(base, "\u00e9")) // a multi-byte rune at the very end
	for _, n := range []string{ns1, ns2, ns3} {
		if len(n) != store.MaxNamespaceLen {
			e.t.Fatalf("storetest bug: namespace of %d bytes", len(n))
		}
	}
	for _, n := range []string{ns1, ns2, ns3} {
		e.set(store.Key{Namespace: n, ID: long}, []byte(n[len(n)-2:]), time.Now())
	}
	for _, n := range []string{ns1, ns2, ns3} {
		e.wantValue(store.Key{Namespace: n, ID: long}, []byte(n[len(n)-2:]))
	}
	l := e.acquire(store.Key{Namespace: ns1, ID: long}, owner("a"), longTTL)
	e.wantFree(store.Key{Namespace: ns2, ID: long}, owner("b"))
	if err := e.s.Release(e.ctx, l); err != nil {
		e.t.Error(err)
	}
}
