package cachier

import (
	"sync/atomic"
	"time"
)

// Stats counts what a Func did since it was wrapped. Reading them is cheap and the
// hit path takes no lock to update them.
type Stats struct {
	Hits           uint64        // fresh results served from the store
	Misses         uint64        // calls that found no usable result
	StaleHits      uint64        // stale results served at once (NextTime)
	Refreshes      uint64        // background refreshes that stored a new result
	RefreshErrors  uint64        // background refreshes that failed (the stale result stays)
	Computations   uint64        // times fn ran
	Waits          uint64        // calls that waited for another caller's computation
	WaitTime       time.Duration // total time spent waiting
	WaitTimeouts   uint64        // waits that gave up after WaitForCalcTimeout and computed
	LeaseTakeovers uint64        // computations started after another holder's lease ran out
	StoreErrors    uint64        // store operations that failed (the call went on)
	DecodeErrors   uint64        // entries that were corrupt or did not decode (served as misses)
	Invalidated    uint64        // entries found but dropped because a tag, prefix or parent moved
	SizeRejections uint64        // results not stored because of EntrySizeLimit or the store's limit
	NilsNotCached  uint64        // nil results returned but not stored (AllowNil is off)
	SkippedCalls   uint64        // calls that bypassed the cache (SkipCache, Disable)
	ComputeTime    time.Duration // total time fn ran
}

type counters struct {
	hits, misses, staleHits, refreshes, refreshErrors, computations    atomic.Uint64
	waits, waitNanos, waitTimeouts, leaseTakeovers, storeErrors        atomic.Uint64
	decodeErrors, sizeRejections, nilsNotCached, skipped, computeNanos atomic.Uint64
	invalidated                                                        atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Hits:           c.hits.Load(),
		Misses:         c.misses.Load(),
		StaleHits:      c.staleHits.Load(),
		Refreshes:      c.refreshes.Load(),
		RefreshErrors:  c.refreshErrors.Load(),
		Computations:   c.computations.Load(),
		Waits:          c.waits.Load(),
		WaitTime:       time.Duration(c.waitNanos.Load()),
		WaitTimeouts:   c.waitTimeouts.Load(),
		LeaseTakeovers: c.leaseTakeovers.Load(),
		StoreErrors:    c.storeErrors.Load(),
		DecodeErrors:   c.decodeErrors.Load(),
		Invalidated:    c.invalidated.Load(),
		SizeRejections: c.sizeRejections.Load(),
		NilsNotCached:  c.nilsNotCached.Load(),
		SkippedCalls:   c.skipped.Load(),
		ComputeTime:    time.Duration(c.computeNanos.Load()),
	}
}
