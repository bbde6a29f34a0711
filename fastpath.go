package cachier

import (
	"sync"
	"sync/atomic"

	"github.com/cachier-go/cachier/internal/tier"
)

// The typed first level.
//
// A hit through the store costs what the core does around it: resolving options,
// deriving the key (an encoding and a SHA-256 digest), reading the store, counting.
// For an argument type whose Go equality matches its encoding (keys.Memoizable: ints,
// strings, structs of them, ...) and no WithKey, a Func keeps a first level in front
// of all that: a lock-free map (sync.Map) from the argument itself to the decoded
// result, the time it was stored, and what makes it valid. A Call with no per-call
// options looks there first; a hit there derives no key, resolves no option,
// allocates nothing and touches no shared cache line but the entry's.
//
// The first level is filled only from a store that issues tickets (tier.Source: the
// memory store), and an entry is served only while
//   - its ticket lives: the store kills it when the stored entry is replaced
//     (Overwrite, Refresh, Precache, another Func), deleted (Invalidate), cleared,
//     evicted, or the store is closed;
//   - for an entry that depends on version counters (tags, prefixes, DependsOn), the
//     store's counter epoch has not moved since the counters were checked;
//   - the settings it was filled under are still the Func's (SetDefaults);
//   - it is fresh and unexpired by the same rules as a store hit (StaleAfter,
//     StaleAfterFunc, ExpireAfter, the entry's ExpiresAt).
//
// Anything else (a stale or expired entry, NextTime, RefreshAhead's window, Disable, SkipCache,
// Overwrite, Verbose, an Observer, per-call options, an open breaker) takes the usual path, which decides
// exactly as before. So the first level is dropped exactly when the store's entry is.

// maxHot bounds the entries of one Func's first level. Past it, dead entries are
// swept and then arbitrary ones dropped, down to three quarters.
const maxHot = 1 << 14

// hotLevel is a Func's typed first level.
type hotLevel[R any] struct {
	m     sync.Map // the argument -> *hotEntry[R]
	n     atomic.Int64
	sweep sync.Mutex
}

// hotEntry is one decoded result and what it is valid under.
type hotEntry[R any] struct {
	v     R
	times foundTimes
	gen   uint64       // the settings generation it was filled under
	life  *tier.Ticket // killed by the store when the entry goes
	deps  bool         // it depends on version counters...
	epoch uint64       // ...checked under this CountersEpoch
}

func (h *hotLevel[R]) put(arg any, e *hotEntry[R]) {
	if _, loaded := h.m.Swap(arg, e); loaded {
		return
	}
	if h.n.Add(1) <= maxHot || !h.sweep.TryLock() {
		return
	}
	defer h.sweep.Unlock()
	h.m.Range(func(k, v any) bool {
		if !v.(*hotEntry[R]).life.Alive() && h.m.CompareAndDelete(k, v) {
			h.n.Add(-1)
		}
		return true
	})
	h.m.Range(func(k, v any) bool {
		if h.n.Load() <= maxHot*3/4 {
			return false
		}
		if h.m.CompareAndDelete(k, v) {
			h.n.Add(-1)
		}
		return true
	})
}

func (h *hotLevel[R]) drop(arg any, e *hotEntry[R]) {
	if h.m.CompareAndDelete(arg, e) {
		h.n.Add(-1)
	}
}

// hotCall answers a Call without options from the first level, or reports false.
func (f *Func[A, R]) hotCall(r *resolvedSettings, arg A) (R, bool) {
	var zero R
	if r.gen != defaults.gen.Load() || disabled.Load() || f.breaker.opened.Load() != nil {
		return zero, false
	}
	x, ok := f.hot.m.Load(arg)
	if !ok {
		return zero, false
	}
	e := x.(*hotEntry[R])
	if e.gen != r.gen || !e.life.Alive() || (e.deps && e.epoch != r.src.CountersEpoch()) {
		f.hot.drop(arg, e)
		return zero, false
	}
	s := &r.s
	if limit := s.effectiveLimit(e.times.ttl); limit != 0 || s.mayExpire(&e.times) {
		// Stale or expired: the usual path decides (NextTime, recompute).
		now := s.clock.Now()
		age := s.age(now, e.times.storedAt)
		if limit < 0 || (limit > 0 && age >= limit) || s.expired(&e.times, now) {
			return zero, false
		}
		if s.expiry.refreshAhead > 0 && limit > 0 && age >= limit-s.expiry.refreshAhead {
			return zero, false // in RefreshAhead's window: the usual path may start a refresh
		}
	}
	if s.cleanupEvery > 0 {
		f.maybeCleanup(s)
	}
	f.stats.hits.Add(1)
	return e.v, true
}

// hotOpen reports whether the first level may answer calls resolved as r: hotCall's
// checks that hold for every argument, which a batch makes once for all of them.
func (f *Func[A, R]) hotOpen(r *resolvedSettings) bool {
	return r.gen == defaults.gen.Load() && !disabled.Load() && f.breaker.opened.Load() == nil
}

// hotGet is hotCall's lookup of one argument once hotOpen holds, without counting
// the hit or cleaning up (the batch does both once). It repeats hotCall's checks
// rather than hotCall calling it: hotCall, on every single hit, stays one function.
func (f *Func[A, R]) hotGet(r *resolvedSettings, arg A) (R, bool) {
	var zero R
	x, ok := f.hot.m.Load(arg)
	if !ok {
		return zero, false
	}
	e := x.(*hotEntry[R])
	if e.gen != r.gen || !e.life.Alive() || (e.deps && e.epoch != r.src.CountersEpoch()) {
		f.hot.drop(arg, e)
		return zero, false
	}
	s := &r.s
	if limit := s.effectiveLimit(e.times.ttl); limit != 0 || s.mayExpire(&e.times) {
		now := s.clock.Now()
		age := s.age(now, e.times.storedAt)
		if limit < 0 || (limit > 0 && age >= limit) || s.expired(&e.times, now) {
			return zero, false
		}
		if s.expiry.refreshAhead > 0 && limit > 0 && age >= limit-s.expiry.refreshAhead {
			return zero, false
		}
	}
	return e.v, true
}
