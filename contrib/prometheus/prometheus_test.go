package cachierprom_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	cachierprom "github.com/cachier-go/cachier/contrib/prometheus"
	"github.com/cachier-go/cachier/store/memstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fixed is a Source with fixed Stats.
type fixed struct {
	ns string
	s  cachier.Stats
}

func (f fixed) Namespace() string    { return f.ns }
func (f fixed) Stats() cachier.Stats { return f.s }

func TestExposition(t *testing.T) {
	s := cachier.Stats{
		Hits: 7, Misses: 3, StaleHits: 2, Refreshes: 1, Computations: 4, ComputeErrors: 1,
		Waits: 5, WaitTime: 1500 * time.Millisecond, WaitTimeMax: time.Second, StoreErrors: 1,
		ComputeTime: 350 * time.Millisecond, ComputeTimeMax: 200 * time.Millisecond,
	}
	// 2 runs of at most 100ms, 1 of at most 250ms, 1 longer than a minute.
	s.ComputeLatency.Counts[9] = 2
	s.ComputeLatency.Counts[10] = 1
	s.ComputeLatency.Counts[len(cachier.LatencyBounds)] = 1
	c := cachierprom.NewCollector(fixed{"main.fetchReport", s}, fixed{"main.lookup@v2", cachier.Stats{Hits: 1}})

	want := `
# HELP cachier_cache_hits_total Fresh results served from the store.
# TYPE cachier_cache_hits_total counter
cachier_cache_hits_total{function="main.fetchReport"} 7
cachier_cache_hits_total{function="main.lookup@v2"} 1
# HELP cachier_cache_misses_total Calls that found no usable result.
# TYPE cachier_cache_misses_total counter
cachier_cache_misses_total{function="main.fetchReport"} 3
cachier_cache_misses_total{function="main.lookup@v2"} 0
# HELP cachier_cache_wait_seconds_total Total time spent waiting for other callers' computations.
# TYPE cachier_cache_wait_seconds_total counter
cachier_cache_wait_seconds_total{function="main.fetchReport"} 1.5
cachier_cache_wait_seconds_total{function="main.lookup@v2"} 0
# HELP cachier_cache_compute_max_seconds Longest single run of the wrapped function.
# TYPE cachier_cache_compute_max_seconds gauge
cachier_cache_compute_max_seconds{function="main.fetchReport"} 0.2
cachier_cache_compute_max_seconds{function="main.lookup@v2"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"cachier_cache_hits_total", "cachier_cache_misses_total", "cachier_cache_wait_seconds_total",
		"cachier_cache_compute_max_seconds"); err != nil {
		t.Error(err)
	}

	wantHist := `
# HELP cachier_cache_compute_seconds Run time of the wrapped function.
# TYPE cachier_cache_compute_seconds histogram
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.0001"} 0
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.00025"} 0
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.0005"} 0
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.001"} 0
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.0025"} 0
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.005"} 0
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.01"} 0
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.025"} 0
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.05"} 0
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.1"} 2
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.25"} 3
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="0.5"} 3
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="1"} 3
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="2.5"} 3
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="5"} 3
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="10"} 3
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="30"} 3
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="60"} 3
cachier_cache_compute_seconds_bucket{function="main.fetchReport",le="+Inf"} 4
cachier_cache_compute_seconds_sum{function="main.fetchReport"} 0.35
cachier_cache_compute_seconds_count{function="main.fetchReport"} 4
`
	one := cachierprom.NewCollector(fixed{"main.fetchReport", s})
	if err := testutil.CollectAndCompare(one, strings.NewReader(wantHist), "cachier_cache_compute_seconds"); err != nil {
		t.Error(err)
	}
}

func TestLint(t *testing.T) {
	c := cachierprom.NewCollector(fixed{"a", cachier.Stats{Hits: 1}})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// Every described metric is collected, and registering works.
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateNamespace(t *testing.T) {
	c := cachierprom.NewCollector(fixed{ns: "a"})
	if err := c.Add(fixed{ns: "b"}, fixed{ns: "a"}); err == nil {
		t.Fatal("Add accepted a namespace already collected")
	}
	if err := c.Add(fixed{ns: "c"}, fixed{ns: "c"}); err == nil {
		t.Fatal("Add accepted a repeated namespace")
	}
	if n := testutil.CollectAndCount(c, "cachier_cache_hits_total"); n != 1 {
		t.Fatalf("%d functions collected after failed Adds, want 1", n)
	}
}

func square(_ context.Context, n int) (int, error) { return n * n, nil }

// TestRealFunc collects a real Func: one miss, then two hits.
func TestRealFunc(t *testing.T) {
	f, err := cachier.Wrap(square, cachier.WithStore(memstore.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	c := cachierprom.NewCollector(f)
	ctx := context.Background()
	for range 3 {
		if _, err := f.Call(ctx, 4); err != nil {
			t.Fatal(err)
		}
	}
	ns := f.Namespace()
	want := `
# HELP cachier_cache_hits_total Fresh results served from the store.
# TYPE cachier_cache_hits_total counter
cachier_cache_hits_total{function="` + ns + `"} 2
# HELP cachier_cache_misses_total Calls that found no usable result.
# TYPE cachier_cache_misses_total counter
cachier_cache_misses_total{function="` + ns + `"} 1
# HELP cachier_cache_computations_total Times the wrapped function ran.
# TYPE cachier_cache_computations_total counter
cachier_cache_computations_total{function="` + ns + `"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"cachier_cache_hits_total", "cachier_cache_misses_total", "cachier_cache_computations_total"); err != nil {
		t.Error(err)
	}
}
