package cachier

import (
	"sync/atomic"
	"time"
)

// Breaker backoff: after a store failure a Func goes straight to its function for
// breakerMin, doubling with each further failure up to breakerMax; then one call tries
// the store again. Without it, a store that hangs costs every call up to three
// StoreTimeouts (read, lease, write) before the function even runs.
const (
	breakerMin = 20 * time.Millisecond
	breakerMax = time.Second
)

// breaker remembers recent store failures of one Func. Its zero value is closed, and a
// closed breaker costs the hit path one atomic load.
type breaker struct {
	openUntil atomic.Int64 // unix nanos by the Func's clock; 0 while closed
	failures  atomic.Uint32
}

// open reports whether calls should bypass the store now.
func (b *breaker) open(c Clock) bool {
	u := b.openUntil.Load()
	return u != 0 && c.Now().UnixNano() < u
}

// failed records a store failure and opens the breaker for the next backoff.
func (b *breaker) failed(c Clock) {
	n := b.failures.Add(1)
	d := min(breakerMin<<min(n-1, 16), breakerMax)
	b.openUntil.Store(c.Now().Add(d).UnixNano())
}

// succeeded records a store operation that worked, and closes the breaker.
func (b *breaker) succeeded() {
	if b.openUntil.Load() != 0 {
		b.openUntil.Store(0)
		b.failures.Store(0)
	}
}
