// Package bench measures cachier side by side with its peers and with the raw
// operations of the stores it uses, and prints the result as a markdown table.
//
// It is its own module, so that the peers (sturdyc, otter, diskv, go-redis/cache,
// eko/gocache, rueidis) never enter cachier's go.mod. Run everything with
//
//	bench/run                      # every section the machine has servers for
//	bench/run -bench.million       # also the filestore hit at 1M entries (slow)
//	bench/run -bench.rounds=3 -test.benchtime=2000x   # a quick look
//
// The script installs the test servers (scripts/install-test-deps), and runs
// TestBenchAll, which starts throwaway servers through internal/testserver, runs
// every subject of a section in interleaved rounds, and writes the table of medians
// and ratios to stdout and to bench/RESULTS.md. Every ratio compares two subjects
// measured in the same run on the same machine; the header says which machine.
package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Measurement is what one subject measured in every round.
type Measurement struct {
	Section string // "memory", "file", "redis", ...
	Op      string // "hit", "miss", "parallel hit", ...
	Impl    string // "cachier (memstore)", "mutex+map memo", ...
	// Base marks the cachier subject that the other subjects of the same section and
	// operation are compared with.
	Base     bool
	NsPerOp  []float64 // one per round
	AllocsOp int64     // from the last round
	Note     string
	Err      string // non-empty when the subject failed or was skipped
}

// Median returns the median ns/op over the rounds, or 0 without any.
func (m *Measurement) Median() float64 { return median(m.NsPerOp) }

// StampedeResult is one implementation's cross-process stampede, over the rounds.
type StampedeResult struct {
	Impl         string
	Shared       string // where the result lives: "per process", "Redis", ...
	Callers      int    // processes × goroutines
	Computations []float64
	Wall         []time.Duration
	Err          string
}

// Machine describes where the numbers were measured.
type Machine struct {
	Date   time.Time
	CPUs   int    // nproc
	CPU    string // model name from /proc/cpuinfo
	Go     string // runtime.Version()
	OSArch string
	Rounds int
	Bench  string // -test.benchtime
	// Load is /proc/loadavg's 1-minute load average at the start and the end of the
	// run: on a shared machine it says how much else was running.
	LoadStart, LoadEnd string
}

// Report is the whole run.
type Report struct {
	Machine       Machine
	Results       []*Measurement
	Stampede      []StampedeResult
	StampedeSetup struct {
		Processes, Goroutines int
		FnTime                time.Duration
	}
	Coherence []CoherenceResult
	Notes     []string // printed under the tables
}

// CoherenceResult is how the changes made by one process reached another process's
// local copy of the same key, for one implementation: each time from just before the
// change was made.
type CoherenceResult struct {
	Impl    string
	Changes string          // what the writing process did, in turn
	Miss    []time.Duration // until the reader's first read its local copy did not answer
	New     []time.Duration // until the reader's first read that returned the new value
	Stale   []time.Duration // from the change's return to that miss (0 when the miss came first)
	Change  []time.Duration // the change itself, in the writing process
	Err     string
}

// Percentile returns the p-th percentile (0 to 1) of ds, nearest rank below, as
// proctest.ReportCoherence computes it; 0 without any.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// p50p99 formats the median and the 99th percentile of ds.
func p50p99(ds []time.Duration) string {
	f := func(d time.Duration) string {
		if d <= 0 {
			return "0"
		}
		return FormatNs(float64(d))
	}
	return f(Percentile(ds, 0.5)) + " / " + f(Percentile(ds, 0.99))
}

// median returns the median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// FormatNs formats a duration in nanoseconds with three significant digits.
func FormatNs(ns float64) string {
	switch {
	case ns <= 0:
		return "–"
	case ns < 10:
		return fmt.Sprintf("%.2f ns", ns)
	case ns < 1000:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.3g µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.3g ms", ns/1e6)
	}
	return fmt.Sprintf("%.3g s", ns/1e9)
}

// Verdict compares a subject's median with cachier's: "cachier 2.1× faster" or, when
// cachier is not ahead, "**cachier 3.4× slower**", in bold so it cannot be missed.
func Verdict(cachierNs, otherNs float64) string {
	if cachierNs <= 0 || otherNs <= 0 {
		return "–"
	}
	r := otherNs / cachierNs
	switch {
	case r >= 1.05:
		return fmt.Sprintf("cachier %s× faster", ratio(r))
	case r <= 1/1.05:
		return fmt.Sprintf("**cachier %s× slower**", ratio(1/r))
	}
	return "on par (within 5%)"
}

func ratio(r float64) string {
	if r >= 10 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.2g", r)
}

// WriteMarkdown writes the report as markdown: a header naming the machine, one
// table of medians and ratios, the stampede table and the notes.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Measured %s on %d × %s (`nproc` = %d), %s %s; median of %d rounds, benchtime %s, all in one run of `bench/run`.",
		m.Date.UTC().Format("2006-01-02 15:04 MST"), m.CPUs, m.CPU, m.CPUs, m.Go, m.OSArch, m.Rounds, m.Bench)
	if m.LoadStart != "" {
		fmt.Fprintf(&b, " Load average %s at the start, %s at the end.", m.LoadStart, m.LoadEnd)
	}
	b.WriteString("\n\n")
	b.WriteString("| section | operation | implementation | median / op | allocs / op | compared with cachier |\n")
	b.WriteString("|---|---|---|---:|---:|---|\n")
	for _, x := range r.Results {
		verdict := "baseline"
		if !x.Base {
			verdict = Verdict(r.base(x).Median(), x.Median())
		}
		value, allocs := FormatNs(x.Median()), fmt.Sprint(x.AllocsOp)
		if x.Err != "" {
			value, allocs, verdict = "–", "–", "not measured: "+x.Err
		}
		impl := x.Impl
		if x.Note != "" {
			impl += " (" + x.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", x.Section, x.Op, impl, value, allocs, verdict)
	}
	if len(r.Stampede) > 0 {
		s := r.StampedeSetup
		fmt.Fprintf(&b, "\nStampede: %d processes × %d goroutines call one cold key of a %v function at once; computations and wall time (from the go signal until the last caller has its result), median of %d rounds.\n\n",
			s.Processes, s.Goroutines, s.FnTime, m.Rounds)
		b.WriteString("| implementation | result shared through | computations | wall time |\n|---|---|---:|---:|\n")
		for _, x := range r.Stampede {
			if x.Err != "" {
				fmt.Fprintf(&b, "| %s | %s | – | not measured: %s |\n", x.Impl, x.Shared, x.Err)
				continue
			}
			walls := make([]float64, len(x.Wall))
			for i, d := range x.Wall {
				walls[i] = float64(d)
			}
			fmt.Fprintf(&b, "| %s | %s | %g of %d | %s |\n", x.Impl, x.Shared, median(x.Computations), x.Callers, FormatNs(median(walls)))
		}
	}
	if len(r.Coherence) > 0 {
		b.WriteString("\nCoherence on Redis: a process makes a change while another reads a locally cached copy of the same key every 100 µs; p50 / p99 from just before the change to the reader's first read its local copy did not answer (miss), to its first read that returned the new value (new), from the change's return to that miss (how long the old value was still served after the change returned: 0 when the miss came first), and of the change itself.\n\n")
		b.WriteString("| implementation | changes, in turn | count | miss p50 / p99 | new p50 / p99 | stale p50 / p99 | change p50 / p99 |\n|---|---|---:|---:|---:|---:|---:|\n")
		for _, x := range r.Coherence {
			if x.Err != "" {
				fmt.Fprintf(&b, "| %s | %s | – | not measured: %s | | | |\n", x.Impl, x.Changes, x.Err)
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s |\n", x.Impl, x.Changes, len(x.Miss), p50p99(x.Miss), p50p99(x.New), p50p99(x.Stale), p50p99(x.Change))
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// base returns the cachier subject x is compared with: the Base subject of the same
// section and operation.
func (r *Report) base(x *Measurement) *Measurement {
	for _, y := range r.Results {
		if y.Base && y.Section == x.Section && y.Op == x.Op && y.Err == "" {
			return y
		}
	}
	return &Measurement{}
}
