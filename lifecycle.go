package cachier

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// lifecycle tracks the work of a Func that may still touch its store after the call
// that started it returned, or while its callers wait: computations, background
// refreshes and cleanups, and the calculation leases they hold. Close waits for it.
type lifecycle struct {
	mu     sync.Mutex
	closed bool
	n      int           // work begun and not ended
	idle   chan struct{} // closed when n drops to 0 after Close; nil otherwise
	held   map[*heldLease]struct{}
}

// begin records the start of work, or reports false once the Func is closed.
func (l *lifecycle) begin() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.n++
	return true
}

// end records the end of work begun.
func (l *lifecycle) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if l.n == 0 && l.idle != nil {
		close(l.idle)
		l.idle = nil
	}
}

func (l *lifecycle) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// close marks the Func closed and returns a channel closed once no work is left.
func (l *lifecycle) close() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.n == 0 {
		done := make(chan struct{})
		close(done)
		return done
	}
	if l.idle == nil {
		l.idle = make(chan struct{})
	}
	return l.idle
}

// heldLease is a calculation lease this Func holds while it computes: renewed by its
// computation, released by it or, when Close gives up waiting, by Close.
type heldLease struct {
	st       store.Store
	mu       sync.Mutex
	l        store.Lease
	released bool
	stop     func() // stops renewing; set once renewal starts
}

func (l *lifecycle) hold(st store.Store, lease store.Lease) *heldLease {
	h := &heldLease{st: st, l: lease}
	l.mu.Lock()
	if l.held == nil {
		l.held = map[*heldLease]struct{}{}
	}
	l.held[h] = struct{}{}
	l.mu.Unlock()
	return h
}

func (l *lifecycle) heldLeases() []*heldLease {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := make([]*heldLease, 0, len(l.held))
	for h := range l.held {
		hs = append(hs, h)
	}
	return hs
}

// lease returns the lease as last renewed.
func (h *heldLease) lease() store.Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.l
}

// renewed records a renewal, unless the lease was released meanwhile.
func (h *heldLease) renewed(l store.Lease) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return false
	}
	h.l = l
	return true
}

// releaseHeld stops renewing h and releases it, once, whoever asks first: its
// computation when it ends (or its write, see handOver), or Close when it gives up
// waiting for it.
func (f *Func[A, R]) releaseHeld(ctx context.Context, s *settings, h *heldLease) {
	l, ok := f.handOver(h)
	if !ok {
		return
	}
	rs := *s
	rs.store = h.st
	f.release(context.WithoutCancel(ctx), &rs, l)
}

// handOver stops renewing h and returns its lease as last renewed, for the caller to
// release; ok is false when someone already did (releaseHeld, handOver).
func (f *Func[A, R]) handOver(h *heldLease) (l store.Lease, ok bool) {
	h.mu.Lock()
	stop := h.stop
	h.mu.Unlock()
	if stop != nil {
		stop() // waits for a renewal under way, so the release comes after it
	}
	h.mu.Lock()
	if h.released {
		h.mu.Unlock()
		return store.Lease{}, false
	}
	h.released = true
	l = h.l
	h.mu.Unlock()
	f.life.mu.Lock()
	delete(f.life.held, h)
	f.life.mu.Unlock()
	return l, true
}

// Close waits for the function's background work (NextTime refreshes, CleanupStale
// runs) and for the computations in flight in this process to store their results,
// or for ctx to be done. Either way it then releases every calculation lease the
// function still holds, so that other processes need not wait for those leases to
// expire. It returns ctx's error if it stopped waiting because of ctx.
//
// After Close, Call and Refresh run fn directly and touch no store, as
// under [Disable]; Precache, Invalidate, Clear and ClearBeingCalculated return
// [ErrClosed]. Close never closes the store, which other functions may share: close
// every Func first, then the store. Calling Close again waits again and returns nil
// once nothing is left.
func (f *Func[A, R]) Close(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: Close needs a context; pass context.Background() to wait without a limit", ErrOption)
	}
	idle := f.life.close()
	if f.local != nil {
		f.local.sync.shutdown() // its watcher and timers
	}
	var err error
	select {
	case <-idle:
	case <-ctx.Done():
		err = fmt.Errorf("cachier: close %s: gave up waiting for background work: %w", f.ns, context.Cause(ctx))
	}
	s, serr := f.settings(nil)
	if serr != nil {
		s = &settings{storeTimeout: defaultSettings().storeTimeout, clock: clock.Real()}
	}
	for _, h := range f.life.heldLeases() {
		f.releaseHeld(ctx, s, h)
	}
	if s.renew != nil {
		s.renew.stopIdle()
	}
	return err
}

// newComputeContext returns the context fn runs under: the caller's values without its
// cancellation (a leaving caller must not cancel the shared work), with the deadline
// of ComputeTimeout, by the Func's clock, and cancellable for CancelWhenAbandoned.
// arm starts the deadline, when the run starts; cancel(nil) releases the context
// without cancelling it.
func newComputeContext(ctx context.Context, s *settings) (cctx context.Context, arm func(), cancel func(error)) {
	base := ctx
	if ctx.Done() != nil { // a context that cannot end needs no detaching
		base = context.WithoutCancel(ctx)
	}
	if s.computeTimeout <= 0 && !s.cancelAbandoned {
		return base, func() {}, func(error) {}
	}
	c := &computeCtx{values: base, done: make(chan struct{})}
	arm = func() {}
	if d := s.computeTimeout; d > 0 {
		arm = func() {
			clk := s.clock
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.err != nil || c.timer != nil {
				return
			}
			c.deadline, c.hasDeadline = clk.Now().Add(d), true
			c.timer = clk.AfterFunc(d, func() { c.cancel(context.DeadlineExceeded) })
		}
	}
	return c, arm, func(err error) {
		if err == nil {
			c.stop()
			return
		}
		c.cancel(err)
	}
}

// computeCtx is fn's context under ComputeTimeout or CancelWhenAbandoned. Its
// deadline runs on the Func's clock, so a test moves it with a fake clock.
type computeCtx struct {
	values context.Context
	done   chan struct{}

	mu          sync.Mutex
	deadline    time.Time
	hasDeadline bool
	timer       clock.Timer
	err         error
}

func (c *computeCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, c.hasDeadline
}

func (c *computeCtx) Done() <-chan struct{} { return c.done }
func (c *computeCtx) Value(key any) any     { return c.values.Value(key) }

func (c *computeCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *computeCtx) String() string { return "cachier.computeContext" }

func (c *computeCtx) cancel(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
	c.mu.Unlock()
	c.stop()
}

// stop stops the deadline's timer, if armed.
func (c *computeCtx) stop() {
	c.mu.Lock()
	t := c.timer
	c.mu.Unlock()
	if t != nil {
		t.Stop()
	}
}
