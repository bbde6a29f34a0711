package cachier

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/store"
)

// refreshPoint is the age at which a hit on the entry stored at storedAt starts a
// refresh ahead: somewhere in the last window of its fresh period (limit), at a point
// drawn from a hash of its key and store time. Every process draws the same point for
// the same entry, and entries written together draw different points, so their
// refreshes spread over the window instead of landing together.
func refreshPoint(k store.Key, storedAt time.Time, limit, window time.Duration) time.Duration {
	window = min(window, limit)
	// FNV-1a, inline so that the hit path allocates nothing.
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(k.ID); i++ {
		h = (h ^ uint64(k.ID[i])) * prime64
	}
	for t, i := uint64(storedAt.UnixNano()), 0; i < 8; i, t = i+1, t>>8 {
		h = (h ^ t&0xff) * prime64
	}
	u := float64(h>>11) / (1 << 53) // uniform in [0, 1)
	return limit - time.Duration(u*float64(window))
}

// refreshAheadOf starts a background refresh of a fresh entry stored at storedAt,
// unless the key's last refresh failed moments ago. The refresh stores its result even
// though the entry is still fresh: only a result stored after the entry that triggered
// it makes it give up. (Measured from the refresh's own start instead, a call that read
// the old entry just before another refresh landed would compute a third time.)
func (f *Func[A, R]) refreshAheadOf(ctx context.Context, s *settings, k store.Key, arg A, now, storedAt time.Time) {
	if !f.backoff.allow(k.ID, now) {
		f.stats.refreshesBackedOff.Add(1)
		return
	}
	if s.verbose {
		f.trace(s, "cachier: hit near its stale limit, refreshing ahead in the background", "key", k.String())
	}
	early := *s
	early.overwrite = true // a fresh entry does not stop this refresh, a newer one does
	f.refreshInBackground(ctx, &early, k, arg, storedAt)
}

// backoffs remembers, per key, the background refreshes that failed, so that a
// failing upstream is retried after a growing delay instead of on every call.
type backoffs struct {
	n  atomic.Int64 // len(m), read without the lock: the common case is empty
	mu sync.Mutex
	m  map[string]backoffState
}

type backoffState struct {
	failures int
	until    time.Time
}

// maxBackoffs bounds the keys remembered; past it the oldest failures are forgotten
// all at once, which only lets those keys retry early.
const maxBackoffs = 10_000

// allow reports whether a refresh of id may start at now.
func (b *backoffs) allow(id string, now time.Time) bool {
	if b.n.Load() == 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.m[id]
	return !ok || !now.Before(st.until)
}

// done records how a refresh of id that ended at now went, and returns the delay
// before the next one may start (0 after a success).
func (b *backoffs) done(id string, now time.Time, err error, s *settings) time.Duration {
	if err == nil {
		if b.n.Load() == 0 {
			return 0
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.m[id]; ok {
			delete(b.m, id)
			b.n.Add(-1)
		}
		return 0
	}
	lo, hi := s.expiry.backoffMin, s.expiry.backoffMax
	if lo == 0 {
		lo, hi = defaultBackoffMin, defaultBackoffMax
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil || len(b.m) >= maxBackoffs {
		b.m = make(map[string]backoffState)
		b.n.Store(0)
	}
	st, ok := b.m[id]
	if !ok {
		b.n.Add(1)
	}
	st.failures++
	d := lo
	for i := 1; i < st.failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	st.until = now.Add(d)
	b.m[id] = st
	return d
}
