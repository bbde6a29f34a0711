package cachier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cachier-go/cachier/store"
)

// expirySettings are the options that bound how long an entry is kept and served:
// ExpireAfter, MaxStale, RefreshAhead and RefreshBackoff.
type expirySettings struct {
	expireAfter  time.Duration // 0: derived from StaleAfter (and MaxStale under NextTime)
	maxStale     time.Duration // 0: NextTime serves a stale result of any age
	refreshAhead time.Duration // 0: no refresh before an entry goes stale
	backoffMin   time.Duration // 0: defaultBackoffMin
	backoffMax   time.Duration // 0: defaultBackoffMax
}

// Defaults of RefreshBackoff.
const (
	defaultBackoffMin = time.Second
	defaultBackoffMax = 5 * time.Minute
)

// ExpireAfter sets how long after it was stored an entry is kept at all: past it a
// read is a miss, whatever StaleAfter, MaxStale and NextTime say, and stores drop it
// (Redis and memcached expire it, MongoDB's TTL index removes it, the other stores'
// cleanup deletes it). Without ExpireAfter an entry expires at StaleAfter, or, under
// NextTime, at StaleAfter plus MaxStale; it never expires when the function has
// neither (or NextTime without MaxStale). This is otter's ExpireAfterWrite, sturdyc's
// ttl and bkt's --ttl.
func ExpireAfter(d time.Duration) Option {
	return opt("ExpireAfter", everywhere, func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("duration %v is not positive; leave ExpireAfter out to keep entries as long as StaleAfter (and MaxStale) need them", d)
		}
		s.expiry.expireAfter = d
		return nil
	})
}

// MaxStale bounds how stale a result NextTime may serve: an entry older than its stale
// limit plus d is not served at all, and the call computes as if there were no entry
// (bkt's --ttl beside --stale). Entries are then kept in the store for StaleAfter plus
// d. It needs NextTime.
func MaxStale(d time.Duration) Option {
	return opt("MaxStale", everywhere, func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("duration %v is not positive; to serve no stale results, leave NextTime off", d)
		}
		s.expiry.maxStale = d
		return nil
	})
}

// RefreshAhead refreshes a hot entry in the background before it goes stale: a hit in
// the last window of its fresh period starts one background refresh (one per key
// across processes, like NextTime's) and is served the current result at once. The
// point where an entry's refresh starts is spread over the window by a hash of its key
// and store time, the same in every process, so keys written together are not all
// refreshed together. This is sturdyc's WithEarlyRefreshes and otter's
// RefreshAfterWrite (refresh after StaleAfter minus window). It needs StaleAfter (or
// StaleAfterFunc) and a window shorter than StaleAfter.
func RefreshAhead(window time.Duration) Option {
	return opt("RefreshAhead", everywhere, func(s *settings) error {
		if window <= 0 {
			return fmt.Errorf("window %v is not positive", window)
		}
		s.expiry.refreshAhead = window
		return nil
	})
}

// RefreshBackoff sets how long a key waits before another background refresh after
// one failed (NextTime, RefreshAhead): min after the first failure, doubling with
// each failure in a row up to max, per key and per process; the stale result is
// served meanwhile. A refresh that succeeds resets it. The default is 1s to 5m
// (sturdyc's retryBaseDelay).
func RefreshBackoff(min, max time.Duration) Option {
	return opt("RefreshBackoff", everywhere, func(s *settings) error {
		if min <= 0 || max < min {
			return fmt.Errorf("backoff from %v to %v: want 0 < min <= max", min, max)
		}
		s.expiry.backoffMin, s.expiry.backoffMax = min, max
		return nil
	})
}

// checkExpiry reports options that contradict each other once defaults, Wrap and Call
// options are all applied. ttlFunc says whether the function has StaleAfterFunc.
func (s *settings) checkExpiry() error {
	x := &s.expiry
	if x.maxStale > 0 && !s.nextTime {
		return fmt.Errorf("%w: MaxStale bounds the stale results NextTime serves; add NextTime(true) or drop MaxStale", ErrOption)
	}
	if x.refreshAhead > 0 {
		if s.staleAfter == 0 && s.ttlFunc == nil {
			return fmt.Errorf("%w: RefreshAhead refreshes entries before they go stale, so it needs StaleAfter (or StaleAfterFunc)", ErrOption)
		}
		if s.staleAfter > 0 && x.refreshAhead >= s.staleAfter {
			return fmt.Errorf("%w: RefreshAhead window %v is not shorter than StaleAfter %v; use a window of a fraction of StaleAfter, such as a tenth", ErrOption, x.refreshAhead, s.staleAfter)
		}
	}
	return nil
}

// expiryAge is how old an entry may get before it is useless (a miss everywhere):
// ExpireAfter, else its stale limit (entryTTL from StaleAfterFunc, or StaleAfter),
// plus MaxStale under NextTime. Zero means never.
func (s *settings) expiryAge(entryTTL time.Duration) time.Duration {
	if s.expiry.expireAfter > 0 {
		return s.expiry.expireAfter
	}
	limit := s.staleAfter
	if entryTTL > 0 {
		limit = entryTTL
	}
	switch {
	case limit <= 0:
		return 0
	case !s.nextTime:
		return limit
	case s.expiry.maxStale > 0:
		return limit + s.expiry.maxStale
	default:
		return 0 // NextTime without MaxStale serves any age
	}
}

// expiresAt is store.Entry.ExpiresAt for an entry stored at storedAt: zero when it
// never expires.
func (s *settings) expiresAt(storedAt time.Time, entryTTL time.Duration) time.Time {
	if d := s.expiryAge(entryTTL); d > 0 {
		return storedAt.Add(d)
	}
	return time.Time{}
}

// mayExpire reports whether an entry read with these settings can be past its expiry,
// so that the hit path reads the clock only when it must.
func (s *settings) mayExpire(h *foundTimes) bool {
	return !h.expiresAt.IsZero() || s.expiryAge(h.ttl) > 0
}

// foundTimes is the part of a found entry that expiry looks at.
type foundTimes struct {
	storedAt  time.Time
	expiresAt time.Time     // the store's, or zero
	ttl       time.Duration // the entry's own stale limit, or 0
}

// expired reports whether an entry is past its expiry at now: past the ExpiresAt the
// store returned, or older than expiryAge by these settings. Both are checked, so an
// entry expires on every store, whether or not it keeps ExpiresAt.
func (s *settings) expired(h *foundTimes, now time.Time) bool {
	if !h.expiresAt.IsZero() && !now.Before(h.expiresAt) {
		return true
	}
	d := s.expiryAge(h.ttl)
	return d > 0 && s.age(now, h.storedAt) >= d
}

// serve decides what a call does with an entry it found: a fresh hit (maybe starting a
// refresh ahead), a stale hit under NextTime (maybe starting a refresh), or, when it
// reports false, a miss because the entry is stale or expired.
func (f *Func[A, R]) serve(ctx context.Context, s *settings, k store.Key, arg A, h *found[R]) (R, Outcome, bool) {
	limit := s.effectiveLimit(h.ttl)
	var (
		now time.Time
		age time.Duration
	)
	if limit != 0 || s.verbose || s.mayExpire(&h.foundTimes) { // reading the clock is a third of a memory hit
		now = s.clock.Now()
		age = s.age(now, h.storedAt)
	}
	expired := !now.IsZero() && s.expired(&h.foundTimes, now)
	fresh := limit == 0 || (limit > 0 && age < limit)
	if fresh && !expired {
		f.stats.hits.Add(1)
		if s.verbose {
			f.trace(s, "cachier: hit", "key", k.String(), "age", age)
		}
		if s.expiry.refreshAhead > 0 && limit > 0 && age >= limit-s.expiry.refreshAhead && // in the window at all
			age >= refreshPoint(k, h.storedAt, limit, s.expiry.refreshAhead) {
			f.refreshAheadOf(ctx, s, k, arg, now, h.storedAt)
		}
		return h.v, Outcome{Result: ResultHit}, true
	}
	switch {
	case expired && (fresh || s.nextTime): // served but for its expiry
		f.stats.expired.Add(1)
		if s.verbose {
			f.trace(s, "cachier: miss: expired", "key", k.String(), "age", age)
		}
		return h.v, Outcome{}, false
	case !s.nextTime:
		if s.verbose {
			f.trace(s, "cachier: miss: stale", "key", k.String(), "age", age, "limit", limit)
		}
		return h.v, Outcome{}, false
	}
	f.stats.staleHits.Add(1)
	if !f.backoff.allow(k.ID, now) {
		f.stats.refreshesBackedOff.Add(1)
		if s.verbose {
			f.trace(s, "cachier: stale hit; the last refresh failed, so none starts yet", "key", k.String(), "age", age)
		}
		return h.v, Outcome{Result: ResultStaleHit}, true
	}
	if s.verbose {
		f.trace(s, "cachier: stale hit, refreshing in the background", "key", k.String(), "age", age, "limit", limit)
	}
	f.refreshInBackground(ctx, s, k, arg, time.Time{})
	return h.v, Outcome{Result: ResultStaleHit}, true
}

// errRefreshPanicked marks a background refresh that panicked, for the backoff.
var errRefreshPanicked = errors.New("cachier: background refresh panicked")
