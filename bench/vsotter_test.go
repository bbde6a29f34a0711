package bench

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
	"github.com/maypok86/otter/v2"
)

// BenchmarkMemoryVsOtter measures cachier on the memory store against otter v2 with
// a loader side by side (issue 13): each iteration times a block of cachier calls and
// a block of otter calls, in alternating order, so that both see the same load, and
// reports both per-call times (the medians of the blocks), their ratio and each one's
// allocations per call.
// The miss cases use keys never used before; "cancellable" calls with a context that
// can end (an HTTP request's, say), the others with context.Background.
//
//	go test -run '^$' -bench MemoryVsOtter -count 8 .
func BenchmarkMemoryVsOtter(b *testing.B) {
	type pair struct {
		name string
		par  bool // each block runs on GOMAXPROCS goroutines
		miss bool
		ctx  func() (context.Context, context.CancelFunc)
	}
	background := func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }
	cancellable := func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }
	for _, p := range []pair{
		{"miss", false, true, background},
		{"miss-cancellable", false, true, cancellable},
		{"hit", false, false, background},
		{"hit-parallel", true, false, background},
	} {
		b.Run(p.name, func(b *testing.B) {
			ctx, cancel := p.ctx()
			defer cancel()
			f, err := cachier.Wrap(makeReport, cachier.Name("bench/vs-otter/"+p.name), cachier.WithStore(memstore.New(nil)))
			if err != nil {
				b.Fatal(err)
			}
			oc, err := otter.New(&otter.Options[int, report]{})
			if err != nil {
				b.Fatal(err)
			}
			loader := otter.LoaderFunc[int, report](makeReport)
			next := 1 << 20 // keys past the small integers Go boxes without allocating
			var mu sync.Mutex
			keys := func(n int) int { // the first of n fresh keys
				mu.Lock()
				defer mu.Unlock()
				next += n
				return next - n
			}
			const hot = 1
			cachierOp := func(k int) {
				if _, err := f.Call(ctx, k); err != nil {
					b.Error(err)
				}
			}
			otterOp := func(k int) {
				if _, err := oc.Get(ctx, k, loader); err != nil {
					b.Error(err)
				}
			}
			cachierOp(hot)
			otterOp(hot)
			block := 128
			if !p.miss {
				block = 4096 // a hit is short: a larger block keeps the timing and start-up small
			}
			run := func(op func(int)) time.Duration {
				workers := 1
				if p.par {
					workers = runtime.GOMAXPROCS(0)
				}
				t0 := time.Now()
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						k := hot
						if p.miss {
							k = keys(block)
						}
						for i := range block {
							if p.miss {
								op(k + i)
							} else {
								op(hot)
							}
						}
					})
				}
				wg.Wait()
				return time.Since(t0) / time.Duration(workers)
			}
			allocs := func(op func(int)) float64 {
				return testing.AllocsPerRun(1000, func() {
					if p.miss {
						op(keys(1))
					} else {
						op(hot)
					}
				})
			}
			var ca, oa float64
			if !p.par {
				ca, oa = allocs(cachierOp), allocs(otterOp)
			}
			var cs, os []time.Duration // per block
			n := 0
			for b.Loop() {
				if n%2 == 0 {
					cs = append(cs, run(cachierOp))
					os = append(os, run(otterOp))
				} else {
					os = append(os, run(otterOp))
					cs = append(cs, run(cachierOp))
				}
				n++
			}
			// Medians of the blocks: a block that a GC cycle or another process
			// preempted (this machine is shared) does not sway them as it sways a sum.
			ct, ot := blockMedian(cs), blockMedian(os)
			b.ReportMetric(float64(ct.Nanoseconds())/float64(block), "cachier-ns/op")
			b.ReportMetric(float64(ot.Nanoseconds())/float64(block), "otter-ns/op")
			b.ReportMetric(float64(ct)/float64(ot), "cachier/otter")
			if !p.par {
				b.ReportMetric(ca, "cachier-allocs/op")
				b.ReportMetric(oa, "otter-allocs/op")
			}
		})
	}
}

func blockMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
