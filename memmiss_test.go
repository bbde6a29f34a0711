package cachier_test

import (
	"context"
	"errors"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cachier-go/cachier"
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
