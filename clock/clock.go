// Package clock is the one source of time for cachier and its stores: now, timers and
// callbacks. Production code uses [Real]; tests use a [Fake], which moves only when the
// test says so, so that code built on cachier is tested without sleeping.
//
// Durations measured between two readings of [Real] use Go's monotonic clock, so a wall
// clock that steps backward or forward never stretches a backoff or a wait. Times that
// cross machines (an entry's StoredAt, a lease's expiry) are wall times, and cachier
// trusts them only within its stated skew bound.
package clock

import (
	"time"
)

// Clock tells the time and schedules work. Implementations are safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once, after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine after d, unless the returned timer is
	// stopped first. The timer's C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the part of *time.Timer that cachier uses.
type Timer interface {
	// C returns the channel the timer fires on (nil for AfterFunc timers).
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped it.
	Stop() bool
	// Reset changes the timer to fire after d; it reports whether it had been active.
	Reset(d time.Duration) bool
}

// Real returns the system clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Since returns the time elapsed since t by c.
func Since(c Clock, t time.Time) time.Duration { return c.Now().Sub(t) }

// OrReal returns c, or the real clock when c is nil.
func OrReal(c Clock) Clock {
	if c == nil {
		return Real()
	}
	return c
}
