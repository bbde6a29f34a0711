package cachier_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/internal/keys"
	"github.com/cachier-go/cachier/store/memstore"
)

// leadFromBackground calls f with a context that cannot end: the caller leads on its
// own goroutine. Its name is looked for in fn's stack.
func leadFromBackground(f *cachier.Func[int, int], x int) (int, error) {
	return f.Call(context.Background(), x)
}

// A caller whose context cannot end runs the computation on its own goroutine (no
// goroutine per miss), and the run is still shared: a joiner whose context ends
// leaves at once with ctx.Err() while the computation goes on, the leader gets its
// result, and the result is stored for the next caller.
func TestMemoryMissRunsOnCallersGoroutine(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var runs atomic.Int64
	var inline atomic.Bool
	fn := func(_ context.Context, x int) (int, error) {
		runs.Add(1)
		inline.Store(strings.Contains(string(debug.Stack()), "leadFromBackground"))
		close(started)
		<-release
		return x * 2, nil
	}
	f, err := cachier.Wrap(fn, cachier.Name("memmiss/inline"), cachier.WithStore(memstore.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		v   int
		err error
	}
	leader := make(chan result, 1)
	go func() { v, err := leadFromBackground(f, 21); leader <- result{v, err} }()
	<-started
	if !inline.Load() {
		t.Fatal("the computation did not run on the leading caller's goroutine")
	}
	ctx, cancel := context.WithCancel(context.Background())
	joiner := make(chan error, 1)
	go func() { _, err := f.Call(ctx, 21); joiner <- err }()
	waitFor(t, "the joiner to join", func() bool { return f.Stats().Misses == 2 })
	cancel()
	if err := <-joiner; !errors.Is(err, context.Canceled) {
		t.Fatalf("joiner whose context ended: %v, want context.Canceled", err)
	}
	select {
	case r := <-leader:
		t.Fatalf("the leader returned %+v before its computation ended", r)
	default:
	}
	close(release)
	if r := <-leader; r.v != 42 || r.err != nil {
		t.Fatalf("leader: %d, %v", r.v, r.err)
	}
	if v, err := f.Call(context.Background(), 21); v != 42 || err != nil || runs.Load() != 1 {
		t.Fatalf("after the run: %d, %v, %d runs; want the stored 42 from one run", v, err, runs.Load())
	}
}

// A panic in a computation run on the leader's goroutine reaches the leader as a
// *PanicError with the stack of the panic, and a joiner as ErrPanicked, never a hang.
func TestMemoryMissInlinePanic(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var runs atomic.Int64
	fn := func(_ context.Context, x int) (int, error) {
		if runs.Add(1) == 1 {
			close(started)
			<-release
			kaboom()
		}
		return 5, nil
	}
	f, err := cachier.Wrap(fn, cachier.Name("memmiss/panic"), cachier.WithStore(memstore.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	leaderDone := make(chan any, 1)
	go func() {
		defer func() { leaderDone <- recover() }()
		leadFromBackground(f, 1)
	}()
	<-started
	joiner := make(chan error, 1)
	go func() { _, err := f.Call(context.Background(), 1); joiner <- err }()
	waitFor(t, "the joiner to join", func() bool { return f.Stats().Misses == 2 })
	close(release)
	pe, ok := (<-leaderDone).(*cachier.PanicError)
	if !ok || pe.Value != "kaboom" || !strings.Contains(string(pe.Stack), "cachier_test.kaboom(") ||
		!strings.Contains(string(pe.Stack), "leadFromBackground") {
		t.Fatalf("leader recovered %v, want the panic with its stack, on the leader's goroutine", pe)
	}
	if err := <-joiner; !errors.Is(err, cachier.ErrPanicked) {
		t.Fatalf("joiner: %v, want ErrPanicked", err)
	}
	if v, err := f.Call(context.Background(), 1); v != 5 || err != nil {
		t.Fatalf("after the panic: %d, %v", v, err)
	}
}

// A miss on the memory store keeps the result without encoding it: the stored bytes
// are made when first read as bytes (a Get: a Batch, package named), and they are the
// ones an eager miss makes. Entries with metadata (a tag) are encoded at once.
func TestMemoryMissMakesBytesOnlyWhenRead(t *testing.T) {
	ctx := context.Background()
	fn := func(_ context.Context, n int) (Report, error) { return Report{Title: "r", Rows: []int{n, n + 1}}, nil }
	lazySt, eagerSt, taggedSt := memstore.New(nil), memstore.New(nil), memstore.New(nil)
	lazy, err := cachier.Wrap(fn, cachier.Name("memmiss/lazy"), cachier.WithStore(lazySt))
	if err != nil {
		t.Fatal(err)
	}
	// Verbose logs each entry's size, so it encodes at once.
	eager, err := cachier.Wrap(fn, cachier.Name("memmiss/lazy"), cachier.WithStore(eagerSt), cachier.Verbose(),
		cachier.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	tagged, err := cachier.Wrap(fn, cachier.Name("memmiss/lazy-tagged"), cachier.WithStore(taggedSt), cachier.Tags("t"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*cachier.Func[int, Report]{lazy, eager, tagged} {
		if _, err := f.Call(ctx, 7); err != nil {
			t.Fatal(err)
		}
	}
	k, _ := lazy.Key(7)
	if e, v, err := lazySt.GetLive(ctx, k); err != nil || len(e.Value) != 0 || v == nil {
		t.Fatalf("after a memory miss: %d bytes, live %v, %v; want the live value and no bytes", len(e.Value), v, err)
	}
	tk, _ := tagged.Key(7)
	if e, _, err := taggedSt.GetLive(ctx, tk); err != nil || len(e.Value) == 0 {
		t.Fatalf("a tagged entry: %d bytes, %v; want its bytes (its metadata) made at once", len(e.Value), err)
	}
	got, err := lazySt.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	want, err := eagerSt.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Value, want.Value) {
		t.Fatalf("bytes made on read %x, eager miss %x", got.Value, want.Value)
	}
	if v, err := lazy.Call(ctx, 7); err != nil || v.Title != "r" || len(v.Rows) != 2 || lazy.Stats().Misses != 1 {
		t.Fatalf("hit after the read: %+v, %v, %+v", v, err, lazy.Stats())
	}
}

// maxMissAllocs bounds the allocations of an in-memory miss of a Func with default
// options called with a context that cannot end (issue 13: otter's loader miss makes 5).
const maxMissAllocs = 4

// A miss on the memory store allocates at most maxMissAllocs times: the digest is not
// memoized when the typed first level answers the next hits.
func TestMemoryMissAllocs(t *testing.T) {
	if raceOn {
		t.Skip("the race detector allocates on its own")
	}
	f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x + 1, nil },
		cachier.Name("test/miss-allocs"), cachier.WithStore(memstore.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	i := 1 << 20 // past the small integers Go boxes without allocating
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		if v, err := f.Call(ctx, i); err != nil || v != i+1 {
			t.Fatalf("Call(%d) = %d, %v", i, v, err)
		}
	})
	if allocs > maxMissAllocs {
		t.Errorf("a miss makes %v allocations, want at most %d", allocs, maxMissAllocs)
	}
	if v, err := f.Call(ctx, i); err != nil || v != i+1 { // and the miss was stored
		t.Fatalf("Call(%d) again = %d, %v", i, v, err)
	}
}

// scalarKeyOf is the key ID of v from a Func of V on the memory store, and the
// digest of v's canonical encoding, which it must be (persisted keys do not change).
func scalarKeyOf[V any](t *testing.T, v V) (got, want string) {
	t.Helper()
	st := memstore.New(nil)
	f, err := cachier.Wrap(func(_ context.Context, x V) (int, error) { return 1, nil },
		cachier.Name(fmt.Sprintf("memmiss/scalar-%T", v)), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	k, err := f.Key(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	// The miss (which derives the key without the digest memo) stores under k too.
	if _, err := f.Call(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	if _, live, err := st.GetLive(context.Background(), k); err != nil || live != 1 {
		t.Errorf("%T: the miss stored nothing under %s (%v)", v, k.ID, err)
	}
	return k.ID, hex.EncodeToString(sum[:])
}

type scalarName string

// Bools, integers of every size and sign, and strings (named or not) are digested
// without the encoder, into the encoder's digest.
func TestScalarKeysUnchanged(t *testing.T) {
	check := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("key %s, want the encoding's digest %s", got, want)
		}
	}
	check(scalarKeyOf(t, true))
	check(scalarKeyOf(t, int8(-100)))
	check(scalarKeyOf(t, int16(-300)))
	check(scalarKeyOf(t, int32(-70000)))
	check(scalarKeyOf(t, int64(-1)<<40))
	check(scalarKeyOf(t, -5000000000))
	check(scalarKeyOf(t, uint8(200)))
	check(scalarKeyOf(t, uint16(60000)))
	check(scalarKeyOf(t, uint32(4000000000)))
	check(scalarKeyOf(t, uint64(1)<<63))
	check(scalarKeyOf(t, uint(7)))
	check(scalarKeyOf(t, "a string"))
	check(scalarKeyOf(t, scalarName("named")))
}

// hookClock runs hook (once) at the first reading of the time after it is set.
type hookClock struct {
	*clock.Fake
	hook atomic.Pointer[func()]
}

func (c *hookClock) Now() time.Time {
	if h := c.hook.Swap(nil); h != nil {
		(*h)()
	}
	return c.Fake.Now()
}

// A memory miss skips looking at the store again before computing only when nothing
// was stored since its lookup: a result stored in between (here by Precache, at the
// first reading of the clock after the lookup, when a caller whose context can end
// enters the computation) answers the call, and fn does not run.
func TestMemoryMissTakesResultStoredAfterLookup(t *testing.T) {
	clk := &hookClock{Fake: newClock()}
	var runs atomic.Int64
	f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { runs.Add(1); return x, nil },
		cachier.Name("memmiss/stored-after-lookup"), cachier.WithStore(memstore.New(nil)), cachier.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v, err := f.Call(ctx, 1); v != 1 || err != nil || runs.Load() != 1 { // warm: resolved settings
		t.Fatalf("first call: %d, %v, %d runs", v, err, runs.Load())
	}
	var hooked atomic.Bool
	hook := func() {
		hooked.Store(true)
		if err := f.Precache(ctx, 2, 99); err != nil {
			t.Error(err)
		}
	}
	clk.hook.Store(&hook)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v, err := f.Call(cctx, 2)
	if !hooked.Load() {
		t.Fatal("the clock was not read during the miss")
	}
	if v != 99 || err != nil || runs.Load() != 1 {
		t.Fatalf("miss with a result stored after its lookup: %d, %v, fn ran %d times; want the stored 99 and no run",
			v, err, runs.Load()-1)
	}
}

// A batch's misses on the memory store are kept as a single call's are: without
// their bytes, made when first read as bytes and equal to those an eager batch
// (Verbose) writes. A "not found" record (CacheMissing) is written with its bytes,
// which say so.
func TestMemoryBatchMissMakesBytesOnlyWhenRead(t *testing.T) {
	ctx := context.Background()
	fn := func(_ context.Context, ns []int) (map[int]Report, error) {
		m := make(map[int]Report, len(ns))
		for _, n := range ns {
			if n != 0 {
				m[n] = Report{Title: "r", Rows: []int{n, n + 1}}
			}
		}
		return m, nil
	}
	lazySt, eagerSt := memstore.New(nil), memstore.New(nil)
	lazy, err := cachier.WrapBatch(fn, cachier.Name("memmiss/batch"), cachier.WithStore(lazySt), cachier.CacheMissing(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	eager, err := cachier.WrapBatch(fn, cachier.Name("memmiss/batch"), cachier.WithStore(eagerSt), cachier.Verbose(),
		cachier.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*cachier.Batch[int, Report]{lazy, eager} {
		if m, err := b.Call(ctx, []int{0, 7, 8}); err != nil || len(m) != 2 {
			t.Fatal(m, err)
		}
	}
	for _, n := range []int{7, 8} {
		k, _ := lazy.Key(n)
		if e, v, err := lazySt.GetLive(ctx, k); err != nil || len(e.Value) != 0 || v == nil {
			t.Fatalf("after a batch miss: %d bytes, live %v, %v; want the live value and no bytes", len(e.Value), v, err)
		}
		got, err := lazySt.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		want, err := eagerSt.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Value, want.Value) {
			t.Fatalf("bytes made on read %x, eager batch %x", got.Value, want.Value)
		}
	}
	k0, _ := lazy.Key(0)
	if e, _, err := lazySt.GetLive(ctx, k0); err != nil || len(e.Value) == 0 {
		t.Fatalf("the \"not found\" record: %d bytes, %v; want its bytes", len(e.Value), err)
	}
	m, err := lazy.Call(ctx, []int{0, 7, 8})
	if _, found := m[0]; err != nil || found || m[7].Title != "r" || lazy.Stats().Computations != 3 {
		t.Fatalf("after the reads: %v, %v, %+v; want 7 and 8, 0 not found, nothing computed again", m, err, lazy.Stats())
	}
}

// maxBatchMissAllocsPerKey bounds the allocations per key of a batch of new
// arguments on the memory store, besides the batch function's own: no more than a
// single call's miss (maxMissAllocs) makes.
const maxBatchMissAllocsPerKey = maxMissAllocs

// A cold batch on the memory store allocates, per key, no more than a single miss:
// no goroutine, flight or promise per key, no digest memo, no encoding.
func TestMemoryBatchMissAllocs(t *testing.T) {
	if raceOn {
		t.Skip("the race detector allocates on its own")
	}
	const n = 100
	var fnAllocs float64
	fn := func(_ context.Context, xs []int) (map[int]int, error) {
		m := make(map[int]int, len(xs))
		for _, x := range xs {
			m[x] = x + 1
		}
		return m, nil
	}
	b, err := cachier.WrapBatch(fn, cachier.Name("test/batch-miss-allocs"), cachier.WithStore(memstore.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	next := 1 << 20 // past the small integers Go boxes without allocating
	args := make([]int, n)
	fresh := func() {
		for i := range args {
			next++
			args[i] = next
		}
	}
	fnAllocs = testing.AllocsPerRun(100, func() {
		fresh()
		if _, err := fn(ctx, args); err != nil {
			t.Fatal(err)
		}
	})
	allocs := testing.AllocsPerRun(100, func() {
		fresh()
		if m, err := b.Call(ctx, args); err != nil || len(m) != n {
			t.Fatalf("%d results, %v", len(m), err)
		}
	})
	t.Logf("%v allocations, %v of them the function's", allocs, fnAllocs)
	if per := (allocs - fnAllocs) / n; per > maxBatchMissAllocsPerKey {
		t.Errorf("a cold batch of %d makes %v allocations besides its function's %v: %.2f per key, want at most %d", n, allocs, fnAllocs, per, maxBatchMissAllocsPerKey)
	}
	if m, err := b.Call(ctx, args); err != nil || m[args[0]] != args[0]+1 || b.Stats().Hits != n { // and the misses were stored
		t.Fatalf("again: %v, %v, %+v", m[args[0]], err, b.Stats())
	}
}
