package bench

import (
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		cachier, other float64
		want           string
	}{
		{100, 250, "cachier 2.5× faster"},
		{100, 1500, "cachier 15× faster"},
		{300, 100, "**cachier 3× slower**"},
		{100, 102, "on par (within 5%)"},
		{0, 100, "–"},
	} {
		if got := Verdict(tc.cachier, tc.other); got != tc.want {
			t.Errorf("Verdict(%v, %v) = %q, want %q", tc.cachier, tc.other, got, tc.want)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	r := &Report{
		Machine: Machine{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), CPUs: 2, CPU: "Test CPU", Go: "go1.26", OSArch: "linux/amd64", Rounds: 3, Bench: "1s"},
		Results: []*Measurement{
			{Section: "memory", Op: "hit", Impl: "cachier", Base: true, NsPerOp: []float64{100, 120, 110}},
			{Section: "memory", Op: "hit", Impl: "peer", Note: "n", NsPerOp: []float64{50, 60, 55}},
			{Section: "redis", Op: "hit", Impl: "cachier", Base: true, Err: "redis-server not found"},
		},
		Stampede: []StampedeResult{{Impl: "cachier", Shared: "Redis", Callers: 256, Computations: []float64{1, 1, 2}, Wall: []time.Duration{100e6, 110e6, 120e6}}},
		Coherence: []CoherenceResult{
			{Impl: "cachier", Changes: "Invalidate", Miss: []time.Duration{3e6, 1e6, 2e6}, New: []time.Duration{2e6, 4e6, 3e6}, Stale: []time.Duration{0, 0, 5e5}, Change: []time.Duration{1e6, 1e6, 1e6}},
			{Impl: "peer", Changes: "DEL", Err: "redis-server not found"},
		},
		Notes: []string{"a note"},
	}
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Measured 2026-01-02 03:04 UTC on 2 × Test CPU (`nproc` = 2)",
		"| memory | hit | cachier | 110 ns | 0 | baseline |",
		"| memory | hit | peer (n) | 55 ns | 0 | **cachier 2× slower** |",
		"| redis | hit | cachier | – | – | not measured: redis-server not found |",
		"| cachier | Redis | 1 of 256 | 110 ms |",
		"| cachier | Invalidate | 3 | 2 ms / 2 ms | 3 ms / 3 ms | 0 / 0 | 1 ms / 1 ms |", // p99 of 3 is the middle one (nearest rank below)
		"| peer | DEL | – | not measured: redis-server not found | | | |",
		"- a note",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}
