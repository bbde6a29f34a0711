package cachier

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestBucketOf(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{-time.Second, 0},
		{100 * time.Microsecond, 0},
		{100*time.Microsecond + 1, 1},
		{time.Millisecond, 3},
		{99 * time.Millisecond, 9},
		{100 * time.Millisecond, 9},
		{time.Minute, len(LatencyBounds) - 1},
		{time.Minute + 1, len(LatencyBounds)},
		{time.Hour, len(LatencyBounds)},
	} {
		if got := bucketOf(tc.d); got != tc.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	for i := 1; i < len(LatencyBounds); i++ {
		if LatencyBounds[i] <= LatencyBounds[i-1] {
			t.Fatalf("LatencyBounds not increasing at %d", i)
		}
	}
}

func TestObserveCompute(t *testing.T) {
	var c counters
	c.observeCompute(3*time.Millisecond, nil)
	c.observeCompute(time.Second, errors.New("boom"))
	c.observeCompute(2*time.Millisecond, nil)
	s := c.snapshot()
	if s.ComputeTime != time.Second+5*time.Millisecond {
		t.Errorf("ComputeTime = %v", s.ComputeTime)
	}
	if s.ComputeTimeMax != time.Second {
		t.Errorf("ComputeTimeMax = %v, want 1s", s.ComputeTimeMax)
	}
	if s.ComputeErrors != 1 {
		t.Errorf("ComputeErrors = %d, want 1", s.ComputeErrors)
	}
	h := s.ComputeLatency
	if h.Count() != 3 || h.Counts[bucketOf(3*time.Millisecond)] != 1 || h.Counts[bucketOf(2*time.Millisecond)] != 1 ||
		h.Counts[bucketOf(time.Second)] != 1 {
		t.Errorf("ComputeLatency = %v", h.Counts)
	}
	cum := h.Cumulative()
	if cum[len(cum)-1] != 3 || cum[bucketOf(5*time.Millisecond)] != 2 || cum[0] != 0 {
		t.Errorf("Cumulative = %v", cum)
	}
}

func TestObserveWait(t *testing.T) {
	var c counters
	c.observeWait(time.Millisecond)
	c.observeWait(5 * time.Millisecond)
	c.observeWait(2 * time.Millisecond)
	s := c.snapshot()
	if s.WaitTime != 8*time.Millisecond || s.WaitTimeMax != 5*time.Millisecond {
		t.Errorf("WaitTime = %v, WaitTimeMax = %v", s.WaitTime, s.WaitTimeMax)
	}
}

// TestCountersConcurrent is for -race: counters are updated and read from many
// goroutines without a lock, and the maximum wins whatever the interleaving.
func TestCountersConcurrent(t *testing.T) {
	var c counters
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				c.hits.Add(1)
				c.observeCompute(time.Duration(g*1000+i), nil)
				c.observeWait(time.Duration(i))
				_ = c.snapshot()
			}
		})
	}
	wg.Wait()
	s := c.snapshot()
	if s.Hits != 8000 || s.ComputeLatency.Count() != 8000 {
		t.Errorf("Hits = %d, latency count = %d; want 8000", s.Hits, s.ComputeLatency.Count())
	}
	if s.ComputeTimeMax != 7999 || s.WaitTimeMax != 999 {
		t.Errorf("ComputeTimeMax = %v, WaitTimeMax = %v", s.ComputeTimeMax, s.WaitTimeMax)
	}
}

func TestStatsSubAndRatios(t *testing.T) {
	var c counters
	c.hits.Add(3)
	c.misses.Add(1)
	c.observeCompute(time.Millisecond, nil)
	before := c.snapshot()
	c.hits.Add(2)
	c.staleHits.Add(1)
	c.misses.Add(1)
	c.skipped.Add(4)
	c.observeCompute(time.Second, nil)
	after := c.snapshot()
	d := after.Sub(before)
	if d.Hits != 2 || d.StaleHits != 1 || d.Misses != 1 || d.SkippedCalls != 4 || d.ComputeTime != time.Second {
		t.Errorf("Sub = %+v", d)
	}
	if d.ComputeLatency.Count() != 1 || d.ComputeLatency.Counts[bucketOf(time.Second)] != 1 {
		t.Errorf("Sub latency = %v", d.ComputeLatency.Counts)
	}
	if d.ComputeTimeMax != time.Second {
		t.Errorf("Sub keeps the maximum: %v", d.ComputeTimeMax)
	}
	if got := d.Calls(); got != 8 {
		t.Errorf("Calls = %d, want 8", got)
	}
	if got := d.HitRatio(); got != 0.75 {
		t.Errorf("HitRatio = %v, want 0.75", got)
	}
	if got := (Stats{}).HitRatio(); got != 0 {
		t.Errorf("HitRatio of nothing = %v", got)
	}
}

// TestSnapshotDoesNotAllocate: reading Stats is cheap enough for a scrape per second
// of thousands of functions.
func TestSnapshotDoesNotAllocate(t *testing.T) {
	var c counters
	if n := testing.AllocsPerRun(100, func() { _ = c.snapshot() }); n != 0 {
		t.Errorf("snapshot allocates %v times", n)
	}
}
