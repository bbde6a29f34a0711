package proctest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// tierNotifiedBound is the reader's LocalTierBound on a store that notifies: far
// longer than any test, so that only the store's notifications (or the wake-up after a
// notification connection came back) can make the reader see a change.
const tierNotifiedBound = time.Hour

// probeEvery paces the reader's calls while it waits for a change. A reader that
// called without a pause kept one of a 2-core machine's cores busy, and the
// processes a change goes through (the writer, the store's server processes: three
// PostgreSQL backends per change) waited for it: on the loaded machine of the
// figures in the README, PostgreSQL's miss p50 was 21 ms with a busy reader and 2.3 ms
// with this pause, files' 6.7 ms and 1.8 ms. The pause makes the measured miss
// later than the drop by at most one pause and the reader's wake-up (0.4 ms at p99 then).
const probeEvery = 100 * time.Microsecond

// envTierBound passes the reader's LocalTierBound.
const envTierBound = "CACHIER_PROCTEST_TIER_BOUND"

// tierFunc wraps the function both sides of LocalTierAcrossProcesses use.
func tierFunc(st store.Driver, name, me string, bound time.Duration) (*cachier.Func[int, string], error) {
	return cachier.Wrap(func(_ context.Context, x int) (string, error) {
		return fmt.Sprintf("computed-by-%s-%d", me, time.Now().UnixNano()), nil
	}, cachier.Name(name), cachier.WithStore(st), cachier.Tags(name+"/tag"),
		cachier.Prefix(func(int) string { return name + "/prefix" }),
		cachier.LocalTier(1000, 0), cachier.LocalTierBound(bound))
}

// tierReader is a worker that answers commands on stdin:
//
//	warm WANT   call until a local hit returns WANT; print "warm"
//	await OLD   call, every probeEvery, until a call returns something else; print
//	            "saw VALUE MISS NEW", the unix nanos when the first call missed the
//	            local tier and when the new value was returned
func tierReader(ctx context.Context, st store.Store, me string) error {
	bound, err := time.ParseDuration(os.Getenv(envTierBound))
	if err != nil {
		return err
	}
	f, err := tierFunc(st, os.Getenv(envName), me, bound)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "warm":
			for {
				before := f.Stats().LocalHits
				v, err := f.Call(ctx, 1)
				if err != nil {
					return err
				}
				if v == arg && f.Stats().LocalHits > before {
					break
				}
				time.Sleep(time.Millisecond) // the first reconcile runs in the background
			}
			fmt.Println("warm")
		case "await":
			// The miss is the start of the first call the local tier did not answer:
			// from then on the old copy is no longer served. The call that returns
			// the new result may come later, after reading or computing it.
			var miss int64
			for {
				at := time.Now()
				before := f.Stats().LocalHits
				v, err := f.Call(ctx, 1)
				if err != nil {
					return err
				}
				if miss == 0 && f.Stats().LocalHits == before {
					miss = at.UnixNano()
				}
				if v != arg {
					fmt.Println("saw", v, miss, time.Now().UnixNano())
					break
				}
				time.Sleep(probeEvery)
			}
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	return in.Err()
}

// tierWorker is a tierReader process driven by the parent.
type tierWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startTierReader(t testing.TB, url, dir, name string, bound time.Duration) *tierWorker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=tierreader", envURL+"="+url, envDir+"="+dir, envName+"="+name,
		envGoroutines+"=1", envLeaseTTL+"=30s", envTierBound+"="+bound.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	w := &tierWorker{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if w.line(t) != "ready" {
		t.Fatal("tier reader did not start")
	}
	return w
}

// line returns the worker's next line of output, or fails the test after a generous
// guard against a hung worker (not a timing assertion).
func (w *tierWorker) line(t testing.TB) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if w.out.Scan() {
			got <- w.out.Text()
		}
		close(got)
	}()
	select {
	case l, ok := <-got:
		if !ok {
			t.Fatalf("tier reader exited: %v", w.cmd.Wait())
		}
		return l
	case <-time.After(2 * time.Minute):
		t.Fatal("tier reader did not answer within 2 minutes")
	}
	return ""
}

func (w *tierWorker) send(t testing.TB, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintln(w.stdin, cmd); err != nil {
		t.Fatal(err)
	}
}

// TierChanges is the number of kinds of change LocalTierAcrossProcesses makes, in
// turn: pass it as rounds to make each once.
const TierChanges = 6

// LocalTierAcrossProcesses checks that a write (Precache), an Invalidate, a Refresh, a
// tag invalidation, a Clear and a prefix invalidation made in this process reach the
// local tier of another process, on the store at url, through the store's
// notifications: the other process's bound is an hour, so polling cannot be what
// brings the change. If kill is not nil, it runs before every change, to cut the
// other process's notification connection in the middle (CLIENT KILL,
// pg_terminate_backend); the change must still arrive.
//
// It returns the timings of each change.
func LocalTierAcrossProcesses(t testing.TB, url string, rounds int, kill func(testing.TB)) []Coherence {
	t.Helper()
	return localTierAcrossProcesses(t, url, rounds, tierNotifiedBound, kill)
}

// LocalTierAcrossProcessesPolled is LocalTierAcrossProcesses for a store that gives no
// notifications: the other process's bound is bound, and polling brings the changes.
func LocalTierAcrossProcessesPolled(t testing.TB, url string, rounds int, bound time.Duration) []Coherence {
	t.Helper()
	return localTierAcrossProcesses(t, url, rounds, bound, nil)
}

func localTierAcrossProcesses(t testing.TB, url string, rounds int, bound time.Duration, kill func(testing.TB)) []Coherence {
	t.Helper()
	ctx := context.Background()
	name := "proctest/tier/" + randHex()
	st, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f, err := tierFunc(st, name, "parent", bound)
	if err != nil {
		t.Fatal(err)
	}
	r := startTierReader(t, url, t.TempDir(), name, bound)

	current := "v0"
	if err := f.Precache(ctx, 1, current); err != nil {
		t.Fatal(err)
	}
	changes := []struct {
		what string
		do   func(i int) error
	}{
		{"Precache", func(i int) error { return f.Precache(ctx, 1, "v"+strconv.Itoa(i)) }},
		{"Invalidate", func(int) error { return f.Invalidate(ctx, 1) }},
		{"Refresh", func(int) error { _, err := f.Refresh(ctx, 1); return err }},
		{"InvalidateTags", func(int) error { return cachier.InvalidateTags(ctx, st, name+"/tag") }},
		{"Clear", func(int) error { return f.Clear(ctx) }},
		{"InvalidatePrefix", func(int) error { return cachier.InvalidatePrefix(ctx, st, name+"/prefix") }},
	}
	var lat []Coherence
	for i := 1; i <= rounds; i++ {
		c := changes[(i-1)%len(changes)]
		r.send(t, "warm "+current)
		if l := r.line(t); l != "warm" {
			t.Fatalf("round %d: reader said %q, want warm", i, l)
		}
		if kill != nil {
			kill(t)
		}
		r.send(t, "await "+current)
		start := time.Now()
		if err := c.do(i); err != nil {
			t.Fatalf("round %d: %s: %v", i, c.what, err)
		}
		done := time.Since(start)
		fields := strings.Fields(r.line(t))
		if len(fields) != 4 || fields[0] != "saw" {
			t.Fatalf("round %d: reader said %q", i, fields)
		}
		miss, _ := strconv.ParseInt(fields[2], 10, 64)
		seen, _ := strconv.ParseInt(fields[3], 10, 64)
		lat = append(lat, Coherence{Change: done, Miss: time.Unix(0, miss).Sub(start), New: time.Unix(0, seen).Sub(start)})
		current = fields[1]
		if c.what == "Precache" && current != "v"+strconv.Itoa(i) {
			t.Fatalf("round %d: after Precache the reader got %q", i, current)
		}
		// The parent's own copy follows too; read what the store now holds.
		v, err := f.Call(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		current = v
		r.send(t, "warm "+current)
		if l := r.line(t); l != "warm" {
			t.Fatalf("round %d: reader said %q, want warm", i, l)
		}
	}
	return lat
}

// Coherence is how one change made in one process reached another process's local
// tier, each time from just before the change was made.
type Coherence struct {
	Change time.Duration // until the change returned in the writing process
	Miss   time.Duration // until the reader's first call that its local tier did not answer
	New    time.Duration // until the reader's first call that returned the new result
}

// ReportCoherence makes b.N changes (run it with -benchtime 200x or so) through
// LocalTierAcrossProcesses and reports the p50 and p99 of the time from a change in one
// process to the first call in the other that missed its local tier (miss-p50-µs,
// miss-p99-µs: the coherence latency), to the first call that returned the new result
// (new-p50-µs, new-p99-µs: the miss plus reading or computing the new result), from
// the change's return to that miss (stale-p50-µs, stale-p99-µs: how long the old
// result was still served after the change was made; 0 when the miss came first), and
// of the change's own duration (change-p50-µs, change-p99-µs).
func ReportCoherence(b *testing.B, url string, kill func(testing.TB)) {
	b.Helper()
	b.ResetTimer()
	lat := LocalTierAcrossProcesses(b, url, b.N, kill)
	b.StopTimer()
	report := func(name string, d func(Coherence) time.Duration) {
		ds := make([]time.Duration, len(lat))
		for i, c := range lat {
			ds[i] = d(c)
		}
		slices.Sort(ds)
		pct := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) }
		b.ReportMetric(pct(0.50), name+"-p50-µs")
		b.ReportMetric(pct(0.99), name+"-p99-µs")
	}
	report("miss", func(c Coherence) time.Duration { return c.Miss })
	report("new", func(c Coherence) time.Duration { return c.New })
	report("stale", func(c Coherence) time.Duration { return max(c.Miss-c.Change, 0) })
	report("change", func(c Coherence) time.Duration { return c.Change })
	b.ReportMetric(0, "ns/op")
}

// LocalTierFuncs checks a function's behaviour with the local tier on, on st, in one
// process, with two Funcs of the same name (as two parts of a program would have):
// hits are computed once, then served from the local tier (on a store that is not in
// process); and an Invalidate, a tag or prefix invalidation, a Clear, a Precache, a
// Refresh or an Overwrite made through one Func or the package is seen by the other's
// next call, at once.
func LocalTierFuncs(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	name := "proctest/tierfuncs/" + randHex()
	var n atomic.Int64
	wrap := func() *cachier.Func[int, string] {
		t.Helper()
		f, err := cachier.Wrap(func(_ context.Context, x int) (string, error) {
			return fmt.Sprintf("%d#%d", x, n.Add(1)), nil
		}, cachier.Name(name), cachier.WithStore(st), cachier.Tags(name+"/tag"),
			cachier.Prefix(func(x int) string { return fmt.Sprintf("%s/parity:%d", name, x%2) }),
			cachier.LocalTier(100, 0))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := wrap(), wrap()
	call := func(f *cachier.Func[int, string], x int) string {
		t.Helper()
		v, err := f.Call(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	computed := func(what string, want int64) {
		t.Helper()
		if got := n.Load(); got != want {
			t.Fatalf("%s: %d computations, want %d", what, got, want)
		}
	}
	// same checks that a and b both return want for x.
	same := func(what string, x int, want string) {
		t.Helper()
		if va, vb := call(a, x), call(b, x); va != want || vb != want {
			t.Fatalf("%s: the Funcs returned %q and %q, want %q", what, va, vb, want)
		}
	}

	v1, v2 := call(a, 1), call(a, 2)
	same("warm", 1, v1)
	same("warm", 2, v2)
	computed("cold then warm", 2)
	if store.Scope(st) != store.LeasesNone {
		// The tier serves once its first reconcile (in the background) is done.
		deadline := time.Now().Add(time.Minute) // a guard, not a timing assertion
		for before := a.Stats().LocalHits; a.Stats().LocalHits == before; {
			if v := call(a, 1); v != v1 {
				t.Fatalf("warm call returned %q, want %q", v, v1)
			}
			if time.Now().After(deadline) {
				t.Fatal("no local hit within a minute")
			}
			runtime.Gosched()
		}
	}
	computed("local hits", 2)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	changes := []struct {
		what     string
		do       func()
		x        int    // the argument whose result changed
		want     string // the new result, or "" for a new computation
		computes int64  // computations it causes for x and 2
	}{
		{"Invalidate through the other Func", func() { must(b.Invalidate(ctx, 1)) }, 1, "", 1},
		{"InvalidateTags", func() { must(cachier.InvalidateTags(ctx, st, name+"/tag")) }, 1, "", 2},
		{"InvalidatePrefix", func() { must(cachier.InvalidatePrefix(ctx, st, name+"/parity:1")) }, 1, "", 1},
		{"Clear through the other Func", func() { must(b.Clear(ctx)) }, 1, "", 2},
		{"Precache through the other Func", func() { must(b.Precache(ctx, 1, "precached")) }, 1, "precached", 0},
		{"Refresh through the other Func", func() { _, err := b.Refresh(ctx, 1); must(err) }, 1, "", 1},
		{"Overwrite through the other Func", func() { _, err := b.Call(ctx, 1, cachier.Overwrite()); must(err) }, 1, "", 1},
	}
	for _, c := range changes {
		old, before := call(a, 1), n.Load()
		call(a, 2) // a copy that some changes keep
		c.do()
		got := call(a, c.x)
		if got == old {
			t.Fatalf("%s: a returned the old %q", c.what, old)
		}
		if c.want != "" && got != c.want {
			t.Fatalf("%s: a returned %q, want %q", c.what, got, c.want)
		}
		same(c.what, c.x, got)
		call(a, 2)
		computed(c.what, before+c.computes)
	}
}

// LocalTierMatrix runs the local tier's function-level checks on the store at url:
// LocalTierFuncs in this process, then every kind of change across processes, through
// the store's notifications (bound 0) or, for a store that gives none, by polling
// within bound.
func LocalTierMatrix(t *testing.T, url string, bound time.Duration) {
	t.Helper()
	t.Run("funcs", func(t *testing.T) {
		st, err := Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		LocalTierFuncs(t, st)
	})
	t.Run("processes", func(t *testing.T) {
		if bound == 0 {
			LocalTierAcrossProcesses(t, url, TierChanges, nil)
		} else {
			LocalTierAcrossProcessesPolled(t, url, TierChanges, bound)
		}
	})
}
