// Package cachierprom exposes the Stats of cachier functions as Prometheus metrics.
//
// It is a module of its own, so that cachier does not depend on the Prometheus
// client. Register one Collector for all the functions of a program:
//
//	c := cachierprom.NewCollector(fetchReport, lookupUser) // *cachier.Func values
//	prometheus.MustRegister(c)
//
// Every metric has a "function" label holding the function's namespace (its name and
// version). The counters are read from Func.Stats at scrape time, which takes no lock
// and allocates nothing in cachier, so scraping costs the functions nothing.
package cachierprom

import (
	"fmt"
	"sync"

	"github.com/cachier-go/cachier"
	"github.com/prometheus/client_golang/prometheus"
)

// Source is what the Collector reads: a *cachier.Func of any type satisfies it.
type Source interface {
	Namespace() string
	Stats() cachier.Stats
}

// counter is one counter metric and how to read it from Stats.
type counter struct {
	desc *prometheus.Desc
	get  func(cachier.Stats) float64
}

func newDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("cachier_cache_"+name, help, []string{"function"}, nil)
}

var (
	counters = []counter{
		{newDesc("hits_total", "Fresh results served from the store."), func(s cachier.Stats) float64 { return float64(s.Hits) }},
		{newDesc("misses_total", "Calls that found no usable result."), func(s cachier.Stats) float64 { return float64(s.Misses) }},
		{newDesc("stale_hits_total", "Stale results served at once while a background refresh runs (NextTime)."), func(s cachier.Stats) float64 { return float64(s.StaleHits) }},
		{newDesc("refreshes_total", "Background refreshes that stored a new result."), func(s cachier.Stats) float64 { return float64(s.Refreshes) }},
		{newDesc("refresh_errors_total", "Background refreshes that failed; the stale result stays."), func(s cachier.Stats) float64 { return float64(s.RefreshErrors) }},
		{newDesc("computations_total", "Times the wrapped function ran."), func(s cachier.Stats) float64 { return float64(s.Computations) }},
		{newDesc("compute_errors_total", "Times the wrapped function returned an error."), func(s cachier.Stats) float64 { return float64(s.ComputeErrors) }},
		{newDesc("waits_total", "Calls that waited for another caller's computation."), func(s cachier.Stats) float64 { return float64(s.Waits) }},
		{newDesc("wait_seconds_total", "Total time spent waiting for other callers' computations."), func(s cachier.Stats) float64 { return s.WaitTime.Seconds() }},
		{newDesc("wait_timeouts_total", "Waits that gave up after WaitForCalcTimeout and computed."), func(s cachier.Stats) float64 { return float64(s.WaitTimeouts) }},
		{newDesc("lease_takeovers_total", "Calculation leases taken over after another holder's lease ran out."), func(s cachier.Stats) float64 { return float64(s.LeaseTakeovers) }},
		{newDesc("store_errors_total", "Store operations that failed; the call went on without the cache."), func(s cachier.Stats) float64 { return float64(s.StoreErrors) }},
		{newDesc("decode_errors_total", "Entries that were corrupt or did not decode, served as misses."), func(s cachier.Stats) float64 { return float64(s.DecodeErrors) }},
		{newDesc("invalidated_total", "Entries found but dropped because a tag, prefix or parent moved."), func(s cachier.Stats) float64 { return float64(s.Invalidated) }},
		{newDesc("size_rejections_total", "Results not stored because of EntrySizeLimit or the store's limit."), func(s cachier.Stats) float64 { return float64(s.SizeRejections) }},
		{newDesc("nils_not_cached_total", "Nil results returned but not stored (AllowNil is off)."), func(s cachier.Stats) float64 { return float64(s.NilsNotCached) }},
		{newDesc("skipped_calls_total", "Calls that bypassed the cache (SkipCache, Disable)."), func(s cachier.Stats) float64 { return float64(s.SkippedCalls) }},
	}
	gauges = []counter{
		{newDesc("compute_max_seconds", "Longest single run of the wrapped function."), func(s cachier.Stats) float64 { return s.ComputeTimeMax.Seconds() }},
		{newDesc("wait_max_seconds", "Longest single wait for another caller's computation."), func(s cachier.Stats) float64 { return s.WaitTimeMax.Seconds() }},
	}
	computeSeconds = newDesc("compute_seconds", "Run time of the wrapped function.")
)

// buckets are cachier.LatencyBounds in seconds.
var buckets = func() []float64 {
	b := make([]float64, len(cachier.LatencyBounds))
	for i, d := range cachier.LatencyBounds {
		b[i] = d.Seconds()
	}
	return b
}()

// Collector is a prometheus.Collector over the Stats of cachier functions. It is safe
// for concurrent use; functions may be added while it is registered.
type Collector struct {
	mu      sync.RWMutex
	sources []Source
	seen    map[string]bool
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector over srcs. It panics if two of them share a
// namespace, which would make their metrics collide; use Add to get an error instead.
func NewCollector(srcs ...Source) *Collector {
	c := &Collector{seen: map[string]bool{}}
	if err := c.Add(srcs...); err != nil {
		panic(err)
	}
	return c
}

// Add adds functions to the collector. It returns an error, and adds none of them,
// if a namespace is already collected or repeated.
func (c *Collector) Add(srcs ...Source) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	batch := map[string]bool{}
	for _, s := range srcs {
		ns := s.Namespace()
		if c.seen[ns] || batch[ns] {
			return fmt.Errorf("cachierprom: function %q is already collected", ns)
		}
		batch[ns] = true
	}
	for ns := range batch {
		c.seen[ns] = true
	}
	c.sources = append(c.sources, srcs...)
	return nil
}

// Describe sends the descriptions of every metric the collector exposes.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range counters {
		ch <- m.desc
	}
	for _, m := range gauges {
		ch <- m.desc
	}
	ch <- computeSeconds
}

// Collect reads every function's Stats and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	srcs := c.sources
	c.mu.RUnlock()
	for _, src := range srcs {
		ns, s := src.Namespace(), src.Stats()
		for _, m := range counters {
			ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, m.get(s), ns)
		}
		for _, m := range gauges {
			ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, m.get(s), ns)
		}
		cum := s.ComputeLatency.Cumulative()
		bk := make(map[float64]uint64, len(buckets))
		for i, b := range buckets {
			bk[b] = cum[i]
		}
		ch <- prometheus.MustNewConstHistogram(computeSeconds, s.ComputeLatency.Count(), s.ComputeTime.Seconds(), bk, ns)
	}
}
