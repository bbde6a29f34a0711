package cachier

import (
	"sync/atomic"
	"time"
)

// Stats counts what a Func did since it was wrapped. Reading them is cheap and the
// hit path takes no lock to update them: every field is an atomic counter, and a hit
// updates exactly one. The hit counter is striped over cache lines (one per goroutine
// stack, summed when read), so hits on many cores do not bounce one line between
// them. Nothing on the hit path reads the clock for Stats; latencies
// are measured on the slow paths only (computations and waits), which read it anyway.
type Stats struct {
	Hits           uint64        // fresh results served from the store
	Misses         uint64        // calls that found no usable result
	StaleHits      uint64        // stale results served at once (NextTime)
	LocalHits      uint64        // of Hits, those the local tier answered (LocalTier)
	Refreshes      uint64        // background refreshes that stored a new result
	RefreshErrors  uint64        // background refreshes that failed (the stale result stays)
	Computations   uint64        // times fn ran
	ComputeErrors  uint64        // times fn returned an error (nothing was stored)
	Waits          uint64        // calls that waited for another caller's computation
	WaitTime       time.Duration // total time spent waiting
	WaitTimeMax    time.Duration // longest single wait
	WaitTimeouts   uint64        // waits that gave up after WaitForCalcTimeout and computed
	LeaseTakeovers uint64        // calculation leases this process took over after another holder's ran out (at most one process per dead holder)
	StoreErrors    uint64        // store operations that failed (the call went on)
	StoreBypassed  uint64        // calls that skipped a store that had failed moments before
	DecodeErrors   uint64        // entries that were corrupt or did not decode (served as misses)
	Invalidated    uint64        // entries found but dropped because a tag, prefix or parent moved
	SizeRejections uint64        // results not stored because of EntrySizeLimit or the store's limit
	NilsNotCached  uint64        // nil results returned but not stored (AllowNil is off)
	SkippedCalls   uint64        // calls that bypassed the cache (SkipCache, Disable)
	ComputeTime    time.Duration // total time fn ran
	ComputeTimeMax time.Duration // longest single run of fn
	// ComputeLatency is the distribution of fn's run times.
	ComputeLatency Histogram

	// Expired counts entries found past their expiry (ExpireAfter, or StaleAfter plus
	// MaxStale under NextTime), which were served as misses.
	Expired uint64
	// RefreshesBackedOff counts calls that started no background refresh because the
	// key's last one failed moments ago (RefreshBackoff).
	RefreshesBackedOff uint64

	// SingleFlight says how far the single flight reaches on the function's store
	// (store.Scope): "shared across processes"; "single flight per process only" for a
	// store whose driver has no atomic primitive (store.Swapper), where each process
	// sharing it computes a missing key once; or "in-process store: no leases needed".
	SingleFlight string
}

// Calls returns the number of calls the Stats account for: hits, stale hits, misses
// and calls that skipped the cache.
func (s Stats) Calls() uint64 { return s.Hits + s.StaleHits + s.Misses + s.SkippedCalls }

// HitRatio returns the share of cached calls (skipped calls aside) that were served
// from the store, fresh or stale, or 0 before the first call.
func (s Stats) HitRatio() float64 {
	served := s.Hits + s.StaleHits
	if served+s.Misses == 0 {
		return 0
	}
	return float64(served) / float64(served+s.Misses)
}

// Sub returns the counts accumulated between an earlier snapshot prev and s, for
// reporting per interval. The maxima are not differences: they are s's.
func (s Stats) Sub(prev Stats) Stats {
	d := Stats{
		SingleFlight:   s.SingleFlight,
		Hits:           s.Hits - prev.Hits,
		Misses:         s.Misses - prev.Misses,
		StaleHits:      s.StaleHits - prev.StaleHits,
		LocalHits:      s.LocalHits - prev.LocalHits,
		Refreshes:      s.Refreshes - prev.Refreshes,
		RefreshErrors:  s.RefreshErrors - prev.RefreshErrors,
		Computations:   s.Computations - prev.Computations,
		ComputeErrors:  s.ComputeErrors - prev.ComputeErrors,
		Waits:          s.Waits - prev.Waits,
		WaitTime:       s.WaitTime - prev.WaitTime,
		WaitTimeMax:    s.WaitTimeMax,
		WaitTimeouts:   s.WaitTimeouts - prev.WaitTimeouts,
		LeaseTakeovers: s.LeaseTakeovers - prev.LeaseTakeovers,
		StoreErrors:    s.StoreErrors - prev.StoreErrors,
		StoreBypassed:  s.StoreBypassed - prev.StoreBypassed,
		DecodeErrors:   s.DecodeErrors - prev.DecodeErrors,
		Invalidated:    s.Invalidated - prev.Invalidated,
		SizeRejections: s.SizeRejections - prev.SizeRejections,
		NilsNotCached:  s.NilsNotCached - prev.NilsNotCached,
		SkippedCalls:   s.SkippedCalls - prev.SkippedCalls,
		ComputeTime:    s.ComputeTime - prev.ComputeTime,
		ComputeTimeMax: s.ComputeTimeMax,
	}
	d.Expired = s.Expired - prev.Expired
	d.RefreshesBackedOff = s.RefreshesBackedOff - prev.RefreshesBackedOff
	for i := range d.ComputeLatency.Counts {
		d.ComputeLatency.Counts[i] = s.ComputeLatency.Counts[i] - prev.ComputeLatency.Counts[i]
	}
	return d
}

// LatencyBounds are the upper bounds (inclusive) of the buckets of a Histogram, from
// a tenth of a millisecond to a minute; a last bucket holds everything longer.
var LatencyBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute,
}

// Histogram is a fixed-bucket distribution of durations. Counts[i] counts durations d
// with LatencyBounds[i-1] < d <= LatencyBounds[i]; the last count is for durations
// longer than the last bound. The counts are not cumulative.
type Histogram struct {
	Counts [len(LatencyBounds) + 1]uint64
}

// Count returns the number of durations recorded.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Cumulative returns, for each bound of LatencyBounds, how many durations were at most
// that long (the form Prometheus and OpenTelemetry expose); Count is the total.
func (h Histogram) Cumulative() [len(LatencyBounds)]uint64 {
	var c [len(LatencyBounds)]uint64
	var sum uint64
	for i := range c {
		sum += h.Counts[i]
		c[i] = sum
	}
	return c
}

// bucketOf returns the index in Histogram.Counts of a duration.
func bucketOf(d time.Duration) int {
	for i, b := range LatencyBounds {
		if d <= b {
			return i
		}
	}
	return len(LatencyBounds)
}

type counters struct {
	hits                                                               stripedCounter // every hit, on every core
	localHits                                                          stripedCounter // hits from the local tier
	misses, staleHits, refreshes, refreshErrors, computations          atomic.Uint64
	waits, waitNanos, waitTimeouts, leaseTakeovers, storeErrors        atomic.Uint64
	decodeErrors, sizeRejections, nilsNotCached, skipped, computeNanos atomic.Uint64
	computeErrors, computeMax, waitMax                                 atomic.Uint64
	invalidated, bypassed                                              atomic.Uint64
	computeLatency                                                     [len(LatencyBounds) + 1]atomic.Uint64

	expired, refreshesBackedOff atomic.Uint64
}

// observeCompute records one run of fn that took d and returned err. Callers of
// the slow path use it instead of adding to computeNanos themselves.
func (c *counters) observeCompute(d time.Duration, err error) {
	d = max(d, 0)
	c.computeNanos.Add(uint64(d))
	storeMax(&c.computeMax, uint64(d))
	c.computeLatency[bucketOf(d)].Add(1)
	if err != nil {
		c.computeErrors.Add(1)
	}
}

// observeWait records d spent waiting for another caller's computation.
func (c *counters) observeWait(d time.Duration) {
	d = max(d, 0)
	c.waitNanos.Add(uint64(d))
	storeMax(&c.waitMax, uint64(d))
}

// storeMax raises m to v unless it is already at least v.
func storeMax(m *atomic.Uint64, v uint64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Hits:           c.hits.Load() + c.localHits.Load(),
		Misses:         c.misses.Load(),
		StaleHits:      c.staleHits.Load(),
		LocalHits:      c.localHits.Load(),
		Refreshes:      c.refreshes.Load(),
		RefreshErrors:  c.refreshErrors.Load(),
		Computations:   c.computations.Load(),
		ComputeErrors:  c.computeErrors.Load(),
		Waits:          c.waits.Load(),
		WaitTime:       time.Duration(c.waitNanos.Load()),
		WaitTimeMax:    time.Duration(c.waitMax.Load()),
		WaitTimeouts:   c.waitTimeouts.Load(),
		LeaseTakeovers: c.leaseTakeovers.Load(),
		StoreErrors:    c.storeErrors.Load(),
		StoreBypassed:  c.bypassed.Load(),
		DecodeErrors:   c.decodeErrors.Load(),
		Invalidated:    c.invalidated.Load(),
		SizeRejections: c.sizeRejections.Load(),
		NilsNotCached:  c.nilsNotCached.Load(),
		SkippedCalls:   c.skipped.Load(),
		ComputeTime:    time.Duration(c.computeNanos.Load()),
		ComputeTimeMax: time.Duration(c.computeMax.Load()),
	}
	s.Expired = c.expired.Load()
	s.RefreshesBackedOff = c.refreshesBackedOff.Load()
	for i := range c.computeLatency {
		s.ComputeLatency.Counts[i] = c.computeLatency[i].Load()
	}
	return s
}
