package proctest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// tierReaderBound is the reader's LocalTierBound: far longer than any test, so that
// only the store's notifications (or the wake-up after a notification connection came
// back) can make the reader see a change.
const tierReaderBound = time.Hour

// tierFunc wraps the function both sides of LocalTierAcrossProcesses use.
func tierFunc(st store.Driver, name, me string) (*cachier.Func[int, string], error) {
	return cachier.Wrap(func(_ context.Context, x int) (string, error) {
		return fmt.Sprintf("computed-by-%s-%d", me, time.Now().UnixNano()), nil
	}, cachier.Name(name), cachier.WithStore(st), cachier.Tags(name+"/tag"),
		cachier.LocalTier(1000, 0), cachier.LocalTierBound(tierReaderBound))
}

// tierReader is a worker that answers commands on stdin:
//
//	warm WANT   call until a local hit returns WANT; print "warm"
//	await OLD   call until a call returns something else; print "saw VALUE UNIXNANO"
func tierReader(ctx context.Context, st store.Store, me string) error {
	f, err := tierFunc(st, os.Getenv(envName), me)
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
			for {
				v, err := f.Call(ctx, 1)
				if err != nil {
					return err
				}
				if v != arg {
					fmt.Println("saw", v, time.Now().UnixNano())
					break
				}
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

func startTierReader(t testing.TB, url, dir, name string) *tierWorker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=tierreader", envURL+"="+url, envDir+"="+dir, envName+"="+name,
		envGoroutines+"=1", envLeaseTTL+"=30s")
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

// LocalTierAcrossProcesses checks that a write, an Invalidate, a Refresh and a tag
// invalidation made in this process reach the local tier of another process, on the
// store at url, through the store's notifications: the other process's bound is an
// hour, so polling cannot be what brings the change. If kill is not nil, it runs
// before every change, to cut the other process's notification connection in the
// middle (CLIENT KILL, pg_terminate_backend); the change must still arrive.
//
// It returns, for each change, the time from just before the change was made to the
// other process's first call that returned the new result.
func LocalTierAcrossProcesses(t testing.TB, url string, rounds int, kill func(testing.TB)) []time.Duration {
	t.Helper()
	ctx := context.Background()
	name := "proctest/tier/" + randHex()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f, err := tierFunc(st, name, "parent")
	if err != nil {
		t.Fatal(err)
	}
	r := startTierReader(t, url, t.TempDir(), name)

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
	}
	var lat []time.Duration
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
		fields := strings.Fields(r.line(t))
		if len(fields) != 3 || fields[0] != "saw" {
			t.Fatalf("round %d: reader said %q", i, fields)
		}
		ns, _ := strconv.ParseInt(fields[2], 10, 64)
		lat = append(lat, time.Unix(0, ns).Sub(start))
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

// ReportCoherence runs rounds changes through LocalTierAcrossProcesses and reports the
// p50 and p99 of the time from a change in one process to the first call in the other
// that returned the new result.
func ReportCoherence(b *testing.B, url string, rounds int, kill func(testing.TB)) {
	b.Helper()
	var lat []time.Duration
	for b.Loop() {
		lat = append(lat, LocalTierAcrossProcesses(b, url, rounds, kill)...)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op")
}
