package cachier

import (
	"sync"
	"time"

	"github.com/cachier-go/cachier/clock"
)

// renewer renews the calculation leases a Func holds while it computes, all on one
// timer of the Func's clock, every third of the lease TTL. A timer per lease cost
// each miss a timer armed and stopped (and, on the real clock, a wake-up of the
// network poller), though nearly every computation ends long before its first
// renewal. Here a miss only adds its lease to a set and removes it: the timer, once
// armed, stays armed until it fires, and it is re-armed then only while leases are
// held. Every Func's resolved settings have their own (one clock, one TTL).
//
// On an injected clock the timer is stopped as soon as no lease is held, as a timer
// per lease was: tests count the timers armed on a [clock.Fake] (BlockUntil, Timers)
// to know what the code under test waits for, and an idle renewal timer would be
// counted.
type renewer struct {
	clk   clock.Clock
	every time.Duration
	eager bool // stop the timer once no lease is held (an injected clock)

	mu     sync.Mutex
	held   map[*renewal]struct{}
	timer  clock.Timer // nil until first armed
	armed  bool        // timer will fire
	firing bool        // fire is renewing; it re-arms the timer when done
}

// renewal is one lease being renewed.
type renewal struct {
	// mu is held while the lease is renewed; stop takes it, so that stopping returns
	// only after a renewal under way, and the lease is released after the last one.
	mu      sync.Mutex
	stopped bool
	renew   func() bool // renews the lease once; false: renew no more
	next    time.Time   // when it is due; guarded by renewer.mu
}

func newRenewer(clk clock.Clock, ttl time.Duration) *renewer {
	return &renewer{clk: clk, every: ttl / 3, eager: clk != clock.Real()}
}

// start renews by renew every third of the TTL from now, until stop is called or
// renew returns false.
func (r *renewer) start(renew func() bool) (stop func()) {
	e := &renewal{renew: renew}
	next := r.clk.Now().Add(r.every)
	r.mu.Lock()
	if r.held == nil {
		r.held = map[*renewal]struct{}{}
	}
	e.next = next
	r.held[e] = struct{}{}
	// An armed timer fires no later than this lease is due: every lease held has the
	// same period, and the timer is armed for the earliest.
	if !r.armed && !r.firing {
		r.arm(r.every)
	}
	r.mu.Unlock()
	return func() {
		e.mu.Lock()
		e.stopped = true
		e.mu.Unlock()
		r.mu.Lock()
		delete(r.held, e)
		if r.eager {
			r.stopIfIdle()
		}
		r.mu.Unlock()
	}
}

// arm sets the timer to fire after d; r.mu is held.
func (r *renewer) arm(d time.Duration) {
	r.armed = true
	if r.timer == nil {
		r.timer = r.clk.AfterFunc(d, r.fire)
		return
	}
	r.timer.Reset(d)
}

// fire renews the leases due, and those due within an eighth of the period (renewing a
// little early is harmless and bounds how often the timer fires for leases taken at
// nearby times), then re-arms the timer for the next one due, if any lease is held.
// The timer is re-armed only once the renewals are done, as with a timer per lease.
func (r *renewer) fire() {
	r.mu.Lock()
	r.armed = false
	if len(r.held) == 0 {
		r.mu.Unlock()
		return // idle: nothing re-arms the timer until a lease is held again
	}
	r.firing = true
	horizon := r.clk.Now().Add(r.every / 8)
	var due []*renewal
	for e := range r.held {
		if !e.next.After(horizon) {
			due = append(due, e)
		}
	}
	r.mu.Unlock()

	keep := make([]bool, len(due))
	if len(due) == 1 {
		keep[0] = due[0].run()
	} else {
		// Renewals of different leases do not wait for each other, as with a timer
		// each; the timer is re-armed once all are done.
		var wg sync.WaitGroup
		for i, e := range due {
			wg.Go(func() { keep[i] = e.run() })
		}
		wg.Wait()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.firing = false
	now := r.clk.Now()
	for i, e := range due {
		if _, ok := r.held[e]; !ok {
			continue // stopped meanwhile
		}
		if !keep[i] {
			delete(r.held, e)
			continue
		}
		e.next = now.Add(r.every)
	}
	var first time.Time
	for e := range r.held {
		if first.IsZero() || e.next.Before(first) {
			first = e.next
		}
	}
	if !first.IsZero() {
		r.arm(max(first.Sub(now), 0))
	}
}

// run renews e once, unless it was stopped; false means renew no more.
func (e *renewal) run() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return false
	}
	return e.renew()
}

// stopIdle stops the timer if no lease is held (Close).
func (r *renewer) stopIdle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopIfIdle()
}

// stopIfIdle stops the timer if no lease is held; r.mu is held.
func (r *renewer) stopIfIdle() {
	if len(r.held) == 0 && r.armed {
		r.timer.Stop()
		r.armed = false
	}
}
