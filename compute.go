package cachier

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"time"

	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/internal/flight"
	"github.com/cachier-go/cachier/store"
)

// Polling bounds for waiters. With a Notifier, polling is only the safety net for
// wake-ups the engine cannot send (a lease that expired).
const (
	minPoll         = time.Millisecond
	maxPoll         = 250 * time.Millisecond
	maxPollNotified = time.Second
)

// ran is the result of a computation in this process, and whether fn ran for it
// (rather than another process's result being read from the store).
type ran[R any] struct {
	v   R
	ran bool
}

// compute runs the single flight for k in this process and waits for it, for ctx,
// or for the waiting limits: after WaitForCalcTimeout a caller that joined another
// caller's run computes itself, as it would behind another process's lease; after
// ComputeTimeout it returns ErrComputeTimeout. direct runs fn without the store (the
// breaker is open): in-process callers still share one run.
//
// cl is the lease this caller's first read took (lookupFirst), or nil. It is used if
// this caller leads the flight; a caller that joins another's run gives it up at
// once, as the leader may be waiting for it.
//
// w0 is the store's write count read before this caller's lookup: when nothing was
// stored since, the computation does not look again before computing.
func (f *Func[A, R]) compute(ctx context.Context, s *settings, k store.Key, arg A, direct bool, cl *claimed, w0 writeMark) (R, Outcome, error) {
	// When this call began, for its Waited: a caller that may lead inline reads it
	// only if it joins another's run (its own run reads the clock when it starts).
	var start time.Time
	inline := !s.overwrite && ctx.Done() == nil
	if !inline {
		start = s.clock.Now()
	}
	cctx, arm, cancel := newComputeContext(ctx, s)
	t := &missTask[A, R]{f: f, ctx: ctx, cctx: cctx, s: s, k: k, arg: arg, direct: direct, cl: cl, w0: w0, arm: arm, cancel: cancel}
	var abandoned func()
	if s.cancelAbandoned {
		abandoned = func() { cancel(context.Canceled) }
	}
	var (
		c         *flight.Call[ran[R]]
		leader    bool
		ranInline bool // this caller led and the run has ended
	)
	if s.overwrite {
		// A refresh answers with a run that begins now: it joins none under way, and
		// callers after it join its run, not the older one.
		// It waits for the run it replaces to end, so that an older result never
		// lands after its own, as it waits for another process's lease.
		c, leader = f.inflight.Replace(ctx, k.ID, func(prev *flight.Call[ran[R]]) (ran[R], error) {
			for _, done := range []<-chan struct{}{callDone(prev), callDone(f.refreshing.Current(k.ID))} {
				select {
				case <-done:
				case <-cctx.Done():
				}
			}
			return t.Run()
		}, abandoned), true
	} else if inline {
		// A caller whose context cannot end waits for the run to the end whichever
		// goroutine runs it (waitLimit and deadline are a joiner's), so it leads on its
		// own: no goroutine to start, and nothing else changes (see flight.JoinInline).
		c, leader = f.inflight.JoinInlineTask(k.ID, t, abandoned)
		ranInline = leader
		if leader {
			start = t.began
		} else {
			start = s.clock.Now()
		}
	} else {
		c, leader = f.inflight.JoinTask(ctx, k.ID, t, abandoned)
	}
	defer c.Leave()
	var waitLimit, deadline <-chan time.Time
	if !leader {
		cancel(nil) // this caller's context for fn is not used
		if cl != nil {
			// The leader of the run joined did not get this lease, so it waits for
			// it: give it up now, not when it expires.
			if s.verbose {
				f.trace(s, "cachier: joined this process's computation; releasing the lease taken by the lookup", "key", k.String())
			}
			f.release(context.WithoutCancel(ctx), s, cl.lease)
		}
		if s.waitTimeout > 0 {
			t := s.clock.NewTimer(s.waitTimeout)
			defer t.Stop()
			waitLimit = t.C()
		}
		if s.computeTimeout > 0 {
			// The run joined began before this caller came: it ends by then.
			t := s.clock.NewTimer(s.computeTimeout)
			defer t.Stop()
			deadline = t.C()
		}
	}
	out := Outcome{Result: ResultMiss}
	if direct {
		out.Result = ResultSkipped
	}
	waited := func() {
		out.Waited = s.clock.Now().Sub(start)
		f.stats.waits.Add(1)
		f.stats.observeWait(out.Waited)
	}
	// A leader that ran the computation inline returns once it has ended, and its
	// context cannot end: nothing to wait for (a select costs a miss more than its
	// share).
	if !ranInline {
		select {
		case <-c.Done():
		case <-ctx.Done():
			if !leader {
				waited()
			}
			var zero R
			return zero, out, ctx.Err()
		case <-waitLimit:
			waited()
			f.stats.waitTimeouts.Add(1)
			if s.verbose {
				f.trace(s, "cachier: stopped waiting for this process's computation; computing", "key", k.String(), "waited", out.Waited)
			}
			out.Computed = true
			v, err := f.computeAlone(ctx, s, k, arg, direct)
			return v, out, err
		case <-deadline:
			waited()
			var zero R
			return zero, out, fmt.Errorf("%w: %s: the computation joined did not end within %v", ErrComputeTimeout, k, s.computeTimeout)
		}
	}
	r, err := c.Result()
	out.Computed = leader && r.ran
	if !leader {
		waited()
	} else if !out.Computed && !start.IsZero() {
		out.Waited = s.clock.Now().Sub(start)
	}
	if err != nil { // errors.As only then: its target escapes, an allocation per miss
		var fp *flight.PanicError
		if errors.As(err, &fp) {
			pe := publicPanic(fp)
			if leader {
				panic(pe) // with the stack of the panic, which happened on the flight's goroutine
			}
			return r.v, out, pe
		}
	}
	return r.v, out, err
}

// missTask is a miss's computation and its flight.Call in one allocation: compute's
// run, whichever goroutine runs it.
type missTask[A, R any] struct {
	flight.Call[ran[R]]
	f         *Func[A, R]
	ctx, cctx context.Context // the caller's, and fn's (newComputeContext)
	s         *settings
	k         store.Key
	arg       A
	direct    bool
	cl        *claimed
	w0        writeMark
	began     time.Time // when computeShared began, if it read the clock
	arm       func()
	cancel    func(error)
}

// Run arms fn's deadline, runs the computation and ends fn's context.
func (t *missTask[A, R]) Run() (ran[R], error) {
	f, s := t.f, t.s
	t.arm()
	defer t.cancel(nil)
	if !f.life.begin() { // closed meanwhile: the store is not ours to use any more
		if t.cl != nil {
			_ = s.store.Release(context.WithoutCancel(t.ctx), t.cl.lease) // best effort: the store may be closed
		}
		return computed(f.runDirect(t.cctx, s, t.arg))
	}
	defer f.life.end()
	if t.direct {
		return computed(f.runDirect(t.cctx, s, t.arg))
	}
	return f.computeShared(t.cctx, s, t.k, t.arg, t.cl, t.w0, &t.began)
}

// computeAlone runs fn for a caller that stopped waiting for another computation of
// k, and stores its result (without a lease: the other computation holds it).
func (f *Func[A, R]) computeAlone(ctx context.Context, s *settings, k store.Key, arg A, direct bool) (R, error) {
	cctx, arm, cancel := newComputeContext(ctx, s)
	arm()
	defer cancel(nil)
	if direct || !f.life.begin() {
		return f.runDirect(cctx, s, arg)
	}
	defer f.life.end()
	return f.runAndStore(cctx, s, k, arg, nil, nil)
}

// computeShared is the one computation of k in this process. It takes the store's
// calculation lease, so that one process computes while the others wait for its
// result; it computes without the lease when the store cannot give one. Taking the
// lease, looking at the entry once more and reading the counters the result will
// depend on are one call (store.MissPath.ReadOrAcquire: one round trip on a store
// that can), and so is each look of a caller that waits.
//
// With cl, the caller's first read found no entry and took the lease
// (store.Claimer.ReadOrClaim): the entry was looked at with the lease, so it computes
// at once, and the miss costs that read and the write.
//
// began receives the time it read before looking at the store again, if it did.
func (f *Func[A, R]) computeShared(ctx context.Context, s *settings, k store.Key, arg A, cl *claimed, w0 writeMark, began *time.Time) (ran[R], error) {
	if cl != nil {
		// A takeover by that read was counted there (lookupFirst).
		lease := cl.lease
		return computed(f.runAndStore(ctx, s, k, arg, &lease, cl.pre))
	}
	var zero ran[R]
	// The invalidation generation before anything else: a result computed before a
	// later Invalidate or Clear is never kept (see invalidation.go).
	g0 := f.inv.gen.Load()
	if processLocal(s.store) {
		// The single flight already makes this the only computation of k in the
		// process, and an in-process store is seen by no other: no lease to take, and
		// the namespace's guard is the only invalidation check. A run that ended
		// between this caller's lookup and its flight may have stored the result
		// already, unless nothing was stored at all since the lookup (w0): the entry
		// is then as the lookup found it, which was no answer.
		if !w0.unchanged(s.store) {
			*began = s.clock.Now()
			if v, ok, cerr := f.accept(ctx, s, k, arg, *began, epoch{}); ok {
				return ran[R]{v: v}, cerr
			}
		}
		return computed(f.runAndStore(ctx, s, k, arg, nil, &preread{g0: g0, unread: true}))
	}
	// A result stored after now answers this call, whatever its age, unless it asked
	// for a new one (Overwrite, Refresh): that answer must come from a computation
	// that began after it was asked for, so it accepts no stored result at all. It
	// waits for whoever holds the lease to finish, then computes under the lease.
	notBefore := s.clock.Now()
	*began = notBefore
	mp, ok := s.store.(store.MissPath)
	if !ok {
		// Not an adapted store (a test double): read as before, without the lease.
		return computed(f.runAndStore(ctx, s, k, arg, nil, &preread{g0: g0, unread: true}))
	}
	if s.verbose && store.Scope(s.store) == store.LeasesProcess && !f.scopeNoted.Swap(true) {
		f.trace(s, "cachier: the store has no atomic primitive (store.Swapper): single flight per process only",
			"store", fmt.Sprintf("%T", store.Unwrap(s.store)))
	}
	names := f.missCounters(s, arg)
	_, versioned := s.store.(store.Versioner)
	owner := newOwner()
	var (
		ep        epoch // the epoch as this call first read it, for accept
		first     = true
		waitStart time.Time
		lastHeld  store.Lease
		changed   <-chan struct{}
		poll      = minPoll
		pollMax   = maxPoll
	)
	for {
		opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
		c, err := mp.ReadOrAcquire(opCtx, k, names, owner, s.leaseTTL)
		cancel()
		if err != nil {
			if err := f.storeFailed(ctx, s, "acquire", k, err); err != nil {
				return zero, err
			}
			return computed(f.runAndStore(ctx, s, k, arg, nil, &preread{g0: g0, unread: true}))
		}
		pre := f.preread(ctx, s, k, g0, names, versioned, c)
		if first {
			first = false
			ep = pre.epoch
		}
		var held *store.HeldError
		switch err := c.LeaseErr; {
		case err == nil:
			lease := c.Lease
			if !waitStart.IsZero() {
				f.endWait(s, k, waitStart, "lease free")
			}
			// A takeover counts whether or not this caller waited: on a busy machine a
			// dead holder's lease may have run out before the first try.
			if lease.TakenOver || (!store.ReportsTakeovers(s.store) && !waitStart.IsZero() &&
				!lastHeld.ExpiresAt.IsZero() && !s.clock.Now().Before(lastHeld.ExpiresAt)) {
				f.stats.leaseTakeovers.Add(1)
				if s.verbose {
					f.trace(s, "cachier: took over an expired lease", "key", k.String(), "holder", lastHeld.Owner.String())
				}
			}
			// A result may have landed between our lookup and the lease.
			if v, ok, cerr := f.acceptClaim(ctx, s, k, arg, &c, pre.known, notBefore, ep); ok {
				f.release(ctx, s, lease)
				return ran[R]{v: v}, cerr
			}
			return computed(f.runAndStore(ctx, s, k, arg, &lease, pre))
		case errors.As(err, &held) || errors.Is(err, store.ErrLeaseHeld):
			if held != nil {
				lastHeld = held.Holder
			}
		default:
			if err := f.storeFailed(ctx, s, "acquire", k, err); err != nil {
				return zero, err
			}
			return computed(f.runAndStore(ctx, s, k, arg, nil, pre))
		}

		// Someone else computes: wait for their result.
		if waitStart.IsZero() {
			waitStart = s.clock.Now()
			f.stats.waits.Add(1)
			if s.verbose {
				f.trace(s, "cachier: waiting for another computation", "key", k.String(), "holder", lastHeld.Owner.String())
			}
			if n, ok := s.store.(store.Notifier); ok {
				ch, stop, err := n.Watch(ctx, k)
				if err == nil {
					defer stop()
					changed, pollMax = ch, maxPollNotified
				}
			}
		}
		if v, ok, cerr := f.acceptClaim(ctx, s, k, arg, &c, pre.known, notBefore, ep); ok {
			f.endWait(s, k, waitStart, "result arrived")
			return ran[R]{v: v}, cerr
		}
		if s.waitTimeout > 0 && s.clock.Now().Sub(waitStart) >= s.waitTimeout {
			f.endWait(s, k, waitStart, "timed out")
			f.stats.waitTimeouts.Add(1)
			return computed(f.runAndStore(ctx, s, k, arg, nil, &preread{g0: g0, unread: true}))
		}
		sleep := poll
		if until := lastHeld.ExpiresAt.Sub(s.clock.Now()); until > 0 && until < sleep {
			sleep = until // wake when the holder's lease runs out
		}
		timer := s.clock.NewTimer(sleep)
		select {
		case <-changed:
		case <-timer.C():
			poll = min(poll*2, pollMax)
		}
		timer.Stop()
	}
}

// preread is what a computation read before fn ran: the namespace's invalidation
// generation in this process, and the counters its entry will record.
type preread struct {
	g0     uint64
	unread bool           // the counters are not read yet: runAndStore reads them
	before []envelope.Dep // the counters, when err is nil
	err    error          // reading them failed
	epoch  epoch          // the function's invalidation epoch among them
	known  map[string]uint64
}

// preread pairs the counters a claim read with their names.
func (f *Func[A, R]) preread(ctx context.Context, s *settings, k store.Key, g0 uint64, names []string, versioned bool, c store.Claim) *preread {
	p := &preread{g0: g0}
	switch {
	case c.VersionsErr != nil:
		p.err = c.VersionsErr
		if noCounters(p.err) && !f.tags.needsVersions() {
			p.err = nil // a store that cannot keep the epoch: as without counters
		}
		return p
	case len(names) == 0:
		return p
	}
	p.before = make([]envelope.Dep, len(names))
	for i, n := range names {
		p.before[i] = envelope.Dep{Name: n, Version: c.Versions[i]}
		if n == f.epochName && versioned {
			p.epoch = epoch{v: c.Versions[i], ok: true}
		}
	}
	if f.tags.needsVersions() {
		p.known = make(map[string]uint64, len(names))
		for i, n := range names {
			p.known[n] = c.Versions[i]
		}
	}
	return p
}

// acceptClaim is accept for the entry a claim read.
func (f *Func[A, R]) acceptClaim(ctx context.Context, s *settings, k store.Key, arg A, c *store.Claim, known map[string]uint64, notBefore time.Time, ep epoch) (R, bool, error) {
	if s.overwrite {
		var zero R
		return zero, false, nil
	}
	h, found, err := f.examine(ctx, s, k, arg, read{e: c.Entry, err: c.Err, known: known})
	if err != nil {
		return h.v, false, nil
	}
	v, ok, err := f.acceptFound(s, &h, found, notBefore, ep)
	if !ok {
		return v, false, nil
	}
	return v, true, err
}

// errInvalidatedMeanwhile marks a written entry deleted again because its function was
// invalidated while it was computed.
var errInvalidatedMeanwhile = errors.New("cachier: invalidated while computing")

// callDone is c.Done(), or a closed channel for no run.
func callDone[V any](c *flight.Call[V]) <-chan struct{} {
	if c == nil {
		return closedChan
	}
	return c.Done()
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// publicPanic is the *PanicError for a panic that flight caught, with its stack.
func publicPanic(fp *flight.PanicError) *PanicError {
	return &PanicError{Value: fp.Value, Stack: fp.Stack}
}

func computed[R any](v R, err error) (ran[R], error) { return ran[R]{v: v, ran: true}, err }

func (f *Func[A, R]) endWait(s *settings, k store.Key, start time.Time, why string) {
	d := s.clock.Now().Sub(start)
	f.stats.observeWait(d)
	if s.verbose {
		f.trace(s, "cachier: stopped waiting", "key", k.String(), "why", why, "waited", d)
	}
}

// accept returns the stored result if it may answer a call that began computing at
// notBefore under the invalidation epoch ep: computed under ep (not before an
// invalidation the call follows), and stored after notBefore (by another caller) or,
// without Overwrite, still fresh. An explicit Overwrite or Refresh accepts nothing
// (computeShared does not ask). An entry stored at the very instant, or in the same
// millisecond on a store that keeps milliseconds, is not taken: recomputing is safe,
// serving a result older than the call is not. A remembered error (CacheErrors)
// answers like a value, as the error cerr.
func (f *Func[A, R]) accept(ctx context.Context, s *settings, k store.Key, arg A, notBefore time.Time, ep epoch) (v R, ok bool, cerr error) {
	if s.overwrite {
		var zero R
		return zero, false, nil
	}
	v, ok, err := f.acceptOrErr(ctx, s, k, arg, notBefore, ep)
	if !ok {
		return v, false, nil
	}
	return v, true, err
}

// acceptOrErr is accept that also returns the store's error, which lookup returns
// only under FailOnStoreError; when ok, its error is a remembered one. Under
// Overwrite (a background refresh ahead of the stale limit) it takes only a result
// stored after notBefore.
func (f *Func[A, R]) acceptOrErr(ctx context.Context, s *settings, k store.Key, arg A, notBefore time.Time, ep epoch) (R, bool, error) {
	h, found, err := f.lookup(ctx, s, k, arg)
	if err != nil {
		return h.v, false, err
	}
	return f.acceptFound(s, &h, found, notBefore, ep)
}

// acceptFound is acceptOrErr for an entry already read and examined.
func (f *Func[A, R]) acceptFound(s *settings, h *found[R], found bool, notBefore time.Time, ep epoch) (R, bool, error) {
	if ep.ok && h.hasEpoch && h.epoch != ep.v {
		return h.v, false, nil // computed before an Invalidate or Clear this call follows
	}
	if h.failed != nil {
		var zero R
		if h.storedAt.After(notBefore) || (!s.overwrite && f.failureAnswers(s, h)) {
			return zero, true, h.failed
		}
		return zero, false, nil
	}
	if !found {
		return h.v, false, nil
	}
	// A stamp further ahead than the skew bound says nothing about when it was stored.
	if h.storedAt.After(notBefore) && !h.storedAt.After(s.clock.Now().Add(s.maxSkew)) {
		return h.v, true, nil
	}
	if s.overwrite {
		return h.v, false, nil
	}
	limit := s.effectiveLimit(h.ttl)
	if limit == 0 && !s.mayExpire(&h.foundTimes) {
		return h.v, true, nil
	}
	now := s.clock.Now()
	if s.expired(&h.foundTimes, now) {
		return h.v, false, nil
	}
	return h.v, limit == 0 || (limit > 0 && s.age(now, h.storedAt) < limit), nil
}

func (f *Func[A, R]) acquire(ctx context.Context, s *settings, k store.Key, o store.Owner) (store.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	defer cancel()
	return s.store.Acquire(ctx, k, o, s.leaseTTL)
}

func (f *Func[A, R]) release(ctx context.Context, s *settings, l store.Lease) {
	ctx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	defer cancel()
	if err := s.store.Release(ctx, l); err != nil {
		_ = f.storeFailed(ctx, s, "release", l.Key, err)
	}
}

// runAndStore runs fn, renewing the lease (if any) while it runs, stores a
// successful result, and then releases the lease, in that order, so that a waiter
// woken by the release finds the result.
func (f *Func[A, R]) runAndStore(ctx context.Context, s *settings, k store.Key, arg A, lease *store.Lease, pre *preread) (R, error) {
	// fn's context may end (ComputeTimeout, CancelWhenAbandoned); storing what fn
	// returned and releasing the lease must not. A context that cannot end (no Done
	// channel) is used as it is.
	sctx := ctx
	if ctx.Done() != nil {
		sctx = context.WithoutCancel(ctx)
	}
	var h *heldLease
	if lease != nil {
		h = f.life.hold(s.store, *lease)
		f.keepRenewing(ctx, s, h)
		defer f.releaseHeld(sctx, s, h)
	}
	if pre == nil {
		pre = &preread{g0: f.inv.gen.Load(), unread: true}
	}
	// The counters are read before computing (by the caller's claim, or here): an
	// invalidation while fn runs then leaves the new entry already stale, rather than
	// hiding it. They include the function's invalidation epoch, which save checks
	// again once the entry is written. Without the tags' counters the result is
	// returned but not stored (it would escape their invalidation); without the epoch
	// alone it is stored as before epochs existed, since the store failing to read is
	// no invalidation.
	before, err := pre.before, pre.err
	if pre.unread {
		before, err = deps(sctx, s, f.missCounters(s, arg))
		if noCounters(err) && !f.tags.needsVersions() {
			before, err = nil, nil // a store that cannot keep the epoch: as without counters
		}
	}
	if err != nil {
		if err := f.storeFailed(sctx, s, "versions", k, err); err != nil {
			return *new(R), err
		}
	}
	storable := err == nil || !f.tags.needsVersions()
	f.stats.computations.Add(1)
	start := s.clock.Now()
	v, err := f.fn(ctx, arg)
	end := s.clock.Now()
	f.stats.observeCompute(end.Sub(start), err)
	if err != nil {
		if r := s.errRuleFor(err); r != nil {
			f.saveFailure(sctx, s, k, err, r, before)
		} else if s.verbose {
			f.trace(s, "cachier: function failed; nothing stored", "key", k.String(), "err", err)
		}
		return v, err
	}
	if !storable {
		return v, nil
	}
	if err := f.save(sctx, s, k, arg, v, before, pre.g0, h, end); err != nil && s.failClosed {
		return v, err
	}
	return v, nil
}

// keepRenewing renews h every third of its TTL until it is released, or until fn's
// context ends (ComputeTimeout passed, or every caller left): past that the lease runs
// out and waiters elsewhere take over. The renewals of all the leases the Func holds
// share one timer (renewer), so that the common computation, shorter than a third of
// the TTL, costs no goroutine and no timer of its own. Stopping returns only after any
// renewal under way has finished, and the lease is released after the last renewal,
// never before it.
func (f *Func[A, R]) keepRenewing(ctx context.Context, s *settings, h *heldLease) {
	r := s.renew
	if r == nil { // settings not resolved by Func.settings
		r = newRenewer(s.clock, s.leaseTTL)
	}
	rctxBase := context.WithoutCancel(ctx)
	stop := r.start(func() bool {
		if ctx.Err() != nil {
			if s.verbose {
				f.trace(s, "cachier: computation past its deadline or abandoned; no longer renewing its lease", "key", h.lease().Key.String())
			}
			return false
		}
		l := h.lease()
		rctx, cancel := context.WithTimeout(rctxBase, s.storeTimeout)
		nl, err := s.store.Renew(rctx, l, s.leaseTTL)
		cancel()
		switch {
		case err == nil:
			return h.renewed(nl)
		case errors.Is(err, store.ErrLeaseLost):
			f.logger(s).Warn("cachier: lost the calculation lease while computing; another caller may compute too",
				"key", l.Key.String())
			return false
		default:
			_ = f.storeFailed(rctxBase, s, "renew", l.Key, err)
			return true
		}
	})
	h.mu.Lock()
	h.stop = stop
	h.mu.Unlock()
}

// save encodes v and stores it with the dependencies read before it was computed
// (before) and those of its result, unless the namespace's invalidation generation
// moved since g0; with h, the lease it was computed under, the write also releases
// it (store.MissPath.WriteAndRelease). It returns a store error only for Precache and
// FailOnStoreError; otherwise failures are logged and counted. at, if not zero, is
// the time v was computed, which an entry kept without its bytes takes as its
// storing time (a reading of the clock less per memory miss).
func (f *Func[A, R]) save(ctx context.Context, s *settings, k store.Key, arg A, v R, before []envelope.Dep, g0 uint64, h *heldLease, at time.Time) error {
	var (
		e   store.Entry
		ok  bool
		err error
	)
	// In a process-local store of live values, bytes nobody reads are not made
	// (livebytes.go).
	lz, enc, lazy := f.lazyTarget(s, v, before)
	if lazy {
		now := at
		if now.IsZero() {
			now = s.clock.Now()
		}
		e = store.Entry{StoredAt: now, ExpiresAt: s.expiresAt(now, 0)}
	} else if e, ok, err = f.seal(ctx, s, k, arg, v, before); !ok {
		return err
	}
	var seq uint64
	wctx := ctx // the write's: tagged as the local tier's own (ownWrites)
	if f.localOn(s) {
		seq = f.local.sync.seq.Load()
		wctx = f.local.sync.ownWrites(ctx)
	}
	e0, checked := f.recordedEpoch(before)
	// The generation check and the write, as one step for this Func's Invalidate and
	// Clear: either they run first and the check sees the generation move, or they
	// delete what was written.
	f.invMu.RLock()
	if f.inv.gen.Load() != g0 {
		f.invMu.RUnlock()
		f.invalidatedMeanwhile(s, k)
		return nil
	}
	moved := false // the epoch read after the write is not the one the entry recorded
	ls, isLive := s.store.(store.LiveStore)
	mp, isMP := s.store.(store.MissPath)
	switch {
	case lazy:
		live := any(v)
		err = lz.SetLazy(ctx, k, e, live, sizeOfFlat[R](live, enc.flatR), enc)
	case isLive && processLocal(s.store):
		err = ls.SetLive(ctx, k, e, any(v))
	case isMP && !isLive:
		// The write, the release of the lease and the epoch after the write: one
		// round trip on a store that can.
		var l store.Lease
		if h != nil {
			l, _ = f.handOver(h)
		}
		var names []string
		if checked {
			names = []string{f.epochName}
		}
		opCtx, cancel := context.WithTimeout(wctx, s.storeTimeout)
		var vs []uint64
		vs, err = mp.WriteAndRelease(opCtx, k, e, l, names)
		cancel()
		if err != nil && l.Owner.Token != "" {
			f.release(ctx, s, l) // the write failed, perhaps before the release: try again
		}
		moved = err == nil && checked && (len(vs) != 1 || vs[0] != e0)
	default:
		if isLive {
			err = ls.SetLive(wctx, k, e, any(v))
		} else {
			opCtx, cancel := context.WithTimeout(wctx, s.storeTimeout)
			err = s.store.Set(opCtx, k, e)
			cancel()
		}
		if err == nil && checked && !processLocal(s.store) {
			now, rerr := f.readEpoch(ctx, s)
			moved = rerr != nil || now.v != e0
		}
	}
	f.invMu.RUnlock()
	filled := false
	if f.localOn(s) && err == nil && !moved {
		f.wroteLocal(ctx, s, k, arg, v, e, seq, nil)
		filled = true
	}
	// An invalidation in this process that moved the generation after the check
	// (through another Func of the namespace, which holds its own lock, or through
	// this one once the lock was let go) may have deleted and dropped its local
	// copies before this write or this fill: checked after both, a move means what
	// was written goes too. A move after this check comes with a delete and a drop
	// that follow the write and the fill.
	if err == nil && f.inv.gen.Load() != g0 {
		moved = true
	}
	// Another process may have bumped and deleted since the epoch was read before
	// computing: delete what was written if it did. A write whose outcome is unknown
	// (an error other than ErrTooLarge) is deleted too, as its epoch cannot be told.
	if moved || (checked && err != nil && !errors.Is(err, store.ErrTooLarge)) {
		opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
		derr := s.store.Delete(opCtx, k)
		cancel()
		if moved {
			if derr != nil {
				_ = f.storeFailed(ctx, s, "delete", k, derr)
			}
			f.invalidatedMeanwhile(s, k)
			if f.localOn(s) {
				f.wroteLocal(ctx, s, k, arg, v, e, seq, errInvalidatedMeanwhile)
			}
			return nil
		}
	}
	if f.localOn(s) && !filled {
		f.wroteLocal(ctx, s, k, arg, v, e, seq, err)
	}
	return f.stored(ctx, s, k, e, err)
}

// invalidatedMeanwhile counts and logs a result not kept because its function was
// invalidated while it was computed.
func (f *Func[A, R]) invalidatedMeanwhile(s *settings, k store.Key) {
	f.stats.invalidated.Add(1)
	if s.verbose {
		f.trace(s, "cachier: invalidated while computing; the result is returned, not kept", "key", k.String())
	}
}

// stored counts and logs the outcome err of writing e under k.
func (f *Func[A, R]) stored(ctx context.Context, s *settings, k store.Key, e store.Entry, err error) error {
	switch {
	case errors.Is(err, store.ErrTooLarge):
		f.stats.sizeRejections.Add(1)
		if s.verbose {
			f.trace(s, "cachier: result too large for the store, not stored", "key", k.String(), "size", len(e.Value))
		}
		return nil
	case err != nil:
		return f.storeFailed(ctx, s, "set", k, err)
	}
	if s.verbose {
		f.trace(s, "cachier: stored", "key", k.String(), "size", len(e.Value))
	}
	return nil
}

// seal encodes v into the entry save stores. ok is false when there is nothing to
// store (a nil result without AllowNil, a result over EntrySizeLimit, a store error
// reading the counters), with an error only for what save would return.
func (f *Func[A, R]) seal(ctx context.Context, s *settings, k store.Key, arg A, v R, before []envelope.Dep) (e store.Entry, ok bool, err error) {
	var (
		codec   = envelope.Raw
		meta    envelope.Meta
		payload []byte
	)
	switch {
	case f.nillable && isNil(v):
		if !s.allowNil {
			f.stats.nilsNotCached.Add(1)
			if s.verbose {
				f.trace(s, "cachier: nil result not stored (AllowNil is off)", "key", k.String())
			}
			return e, false, nil
		}
		meta.Flags = envelope.Nil
	case f.raw == rawBytes:
		payload = any(v).([]byte)
	case f.raw == rawString:
		payload = []byte(any(v).(string))
	default:
		var err error
		if payload, err = s.codec.Marshal(v); err != nil {
			f.stats.decodeErrors.Add(1)
			return e, false, fmt.Errorf("%w: encode %T: %w", ErrUncacheable, v, err)
		}
		codec = idOf(s.codec)
	}
	meta.Deps = before
	if f.tags.resultTags != nil {
		var names []string
		for _, t := range f.tags.resultTags(arg, v) {
			names = append(names, tagCounter(t))
		}
		more, err := deps(ctx, s, names)
		if err != nil {
			return e, false, f.storeFailed(ctx, s, "versions", k, err)
		}
		meta.Deps = append(meta.Deps, more...)
	}
	if len(meta.Deps) > envelope.MaxDeps {
		f.stats.sizeRejections.Add(1)
		return e, false, nil
	}
	if f.tags.ttlOf != nil {
		meta.TTL = max(f.tags.ttlOf(arg, v), 0)
	}
	if s.sizeLimit > 0 && len(payload) > s.sizeLimit {
		f.stats.sizeRejections.Add(1)
		if f.sizeWarned.CompareAndSwap(false, true) {
			f.logger(s).Warn("cachier: a result larger than EntrySizeLimit is returned but not stored; later ones are only counted (Stats)",
				"ns", f.ns, "size", len(payload), "limit", s.sizeLimit)
		}
		if s.verbose {
			f.trace(s, "cachier: result larger than EntrySizeLimit not stored", "key", k.String(), "size", len(payload), "limit", s.sizeLimit)
		}
		return e, false, nil
	}
	now := s.clock.Now()
	return store.Entry{Value: envelope.Seal(codec, meta, payload), StoredAt: now, ExpiresAt: s.expiresAt(now, meta.TTL)}, true, nil
}

// isNil reports whether v, of a pointer, map, slice or interface type, is nil.
func isNil[R any](v R) bool {
	x := any(v)
	return x == nil || reflect.ValueOf(x).IsNil()
}

// refreshInBackground starts at most one refresh of k in this process, and gives up
// at once if another process holds the lease (it is refreshing or computing). A
// result stored after since (now, when since is zero) answers it.
func (f *Func[A, R]) refreshInBackground(ctx context.Context, s *settings, k store.Key, arg A, since time.Time) {
	ctx = context.WithoutCancel(ctx)
	start := since
	if start.IsZero() {
		start = s.clock.Now()
	}
	if !f.life.begin() {
		return // closed: no new background work
	}
	started := f.refreshing.Start(ctx, k.ID, func() (v R, err error) {
		defer f.life.end()
		defer func() {
			if r := recover(); r != nil {
				f.backoff.done(k.ID, s.clock.Now(), errRefreshPanicked, s)
				f.logger(s).Error("cachier: background refresh panicked; the stale result stays", "key", k.String(), "panic", r, "stack", string(debug.Stack()))
				f.stats.refreshErrors.Add(1)
			}
		}()
		lease, err := f.acquire(ctx, s, k, newOwner())
		switch {
		case errors.Is(err, store.ErrLeaseHeld):
			if s.verbose {
				f.trace(s, "cachier: refresh already under way elsewhere", "key", k.String())
			}
			return v, nil
		case err != nil:
			return v, f.storeFailed(ctx, s, "acquire", k, err)
		}
		// A refresh that cannot read the store gives up: nobody waits for its result,
		// and computing blind would only repeat a refresh that may have landed.
		strict := *s
		strict.failClosed = true
		ep, err := f.readEpoch(ctx, &strict)
		if err != nil {
			f.release(ctx, s, lease)
			return v, f.storeFailed(ctx, s, "versions", k, err)
		}
		if v, ok, err := f.acceptOrErr(ctx, &strict, k, arg, start, ep); ok || err != nil {
			f.release(ctx, s, lease) // refreshed by someone else meanwhile, or the store failed
			return v, nil
		}
		cctx, arm, cancel := newComputeContext(ctx, s)
		arm()
		defer cancel(nil)
		// A failed refresh keeps the stale value: it never stores an error over it.
		rs := *s
		rs.errRules = nil
		v, err = f.runAndStore(cctx, &rs, k, arg, &lease, nil)
		// The backoff is recorded before the outcome is counted, so whoever sees the
		// count also sees the backoff.
		f.backoff.done(k.ID, s.clock.Now(), err, s)
		if err != nil {
			// Logged before it is counted, so whoever sees the count finds the log.
			f.logger(s).Warn("cachier: background refresh failed; the stale result stays", "key", k.String(), "err", err)
			f.stats.refreshErrors.Add(1)
			return v, err
		}
		f.stats.refreshes.Add(1)
		return v, nil
	})
	if !started {
		f.life.end()
	}
}

// maybeCleanup deletes stale entries in the background, at most once per interval.
func (f *Func[A, R]) maybeCleanup(s *settings) {
	if s.staleAfter <= 0 {
		return
	}
	now := s.clock.Now()
	last := f.lastCleanup.Load()
	// A clock that reads earlier than the last cleanup (stepped back) makes one due.
	if last != nil {
		if since := now.Sub(*last); since >= 0 && since < s.cleanupEvery {
			return
		}
	}
	if !f.lastCleanup.CompareAndSwap(last, &now) {
		return
	}
	if !f.life.begin() {
		return
	}
	go func() {
		defer f.life.end()
		ctx, cancel := context.WithTimeout(context.Background(), 10*s.storeTimeout)
		defer cancel()
		cutoff := now.Add(-s.staleAfter)
		if s.ttlFunc != nil {
			// Entries have stale limits of their own (StaleAfterFunc), longer or
			// shorter than StaleAfter: delete only those past their expiry, which
			// DeleteBefore also does, and none by their age alone.
			cutoff = time.Unix(0, 0)
		}
		n, err := s.store.DeleteBefore(ctx, f.ns, cutoff)
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			_ = f.storeFailed(ctx, s, "cleanup", store.Key{Namespace: f.ns, ID: "*"}, err)
			return
		}
		if s.verbose {
			f.trace(s, "cachier: cleaned up stale entries", "ns", f.ns, "deleted", n)
		}
	}()
}
