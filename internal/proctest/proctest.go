// Package proctest proves cachier's cross-process guarantees on any store that can be
// opened from a URL, by re-executing the test binary as worker processes.
//
// A store package's tests make Main their TestMain (or call MaybeWorker first thing in
// their own), then use
// Stampede and KillTakeover with a URL of the store under test:
//
//	func TestMain(m *testing.M) { proctest.Main(m) }
//	func TestStampede(t *testing.T) { proctest.Stampede(t, url, 4, 16) }
//
// Workers count their computations by appending to a file in a shared directory, so
// the parent counts what ran, not what the workers believe.
package proctest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
)

const (
	envRole       = "CACHIER_PROCTEST_ROLE"
	envURL        = "CACHIER_PROCTEST_URL"
	envDir        = "CACHIER_PROCTEST_DIR"
	envName       = "CACHIER_PROCTEST_NAME"
	envGoroutines = "CACHIER_PROCTEST_GOROUTINES"
	envLeaseTTL   = "CACHIER_PROCTEST_LEASE_TTL"
)

// Main is the TestMain of a store package's tests: it runs the worker role named in
// the environment (see MaybeWorker), or else the tests under testserver.Main, which
// stops the servers they started.
func Main(m *testing.M) {
	MaybeWorker()
	testserver.Main(m)
}

// MaybeWorker runs the worker role named in the environment and exits, or returns at
// once in an ordinary test run.
func MaybeWorker() {
	role := os.Getenv(envRole)
	if role == "" {
		return
	}
	if err := work(role); err != nil {
		fmt.Fprintln(os.Stderr, "proctest worker:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func work(role string) error {
	ctx := context.Background()
	st, err := Open(ctx, os.Getenv(envURL))
	if err != nil {
		return err
	}
	defer st.Close()
	dir := os.Getenv(envDir)
	ttl, err := time.ParseDuration(os.Getenv(envLeaseTTL))
	if err != nil {
		return err
	}
	me := fmt.Sprintf("%d-%s", os.Getpid(), randHex())
	switch role {
	case "tagcall":
		return tagCall(ctx, st, dir, me)
	case "refresh":
		return refreshWorker(ctx, st, dir, me)
	case "batch":
		return batchWorker(ctx, st, dir, me)
	case "closerefresh":
		return closeRefreshWorker(ctx, st, dir, me)
	case "tierreader":
		return tierReader(ctx, st, me)
	case "holdcompute":
		return holdWorker(ctx, st, dir, me)
	case "errcall":
		return errCallWorker(ctx, st, dir, me)
	case "badkey":
		return badKeyWorker(ctx, st, dir, me)
	case "downflight":
		return downFlightWorker(ctx, st, dir, me)
	case "invalidate":
		fmt.Println("ready")
		return cachier.InvalidateTags(ctx, st, os.Getenv(envName)+"/tag")
	}
	compute := func(_ context.Context, key string) (string, error) {
		if err := appendLine(filepath.Join(dir, "computations"), me); err != nil {
			return "", err
		}
		if role == "blocker" {
			select {} // computing forever, until SIGKILL
		}
		time.Sleep(200 * time.Millisecond) // long enough for every worker to pile in
		return "value-from-" + me, nil
	}
	g, err := cachier.Wrap(compute, cachier.Name(os.Getenv(envName)), cachier.WithStore(st), cachier.LeaseTTL(ttl))
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv(envGoroutines))
	// Wait for the parent's go: every worker is up before anyone calls.
	fmt.Println("ready")
	for {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	results := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = g.Call(ctx, "the-one-key")
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			return errs[i]
		}
		fmt.Println("result", results[i])
	}
	s := g.Stats()
	fmt.Println("takeovers", s.LeaseTakeovers)
	return nil
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type worker struct {
	cmd   *exec.Cmd
	out   *bufio.Scanner
	lines []string
	done  chan error
}

func start(t *testing.T, role, url, dir, name string, goroutines int, ttl time.Duration) *worker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envRole+"="+role, envURL+"="+url, envDir+"="+dir, envName+"="+name,
		envGoroutines+"="+strconv.Itoa(goroutines), envLeaseTTL+"="+ttl.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &worker{cmd: cmd, out: bufio.NewScanner(stdout), done: make(chan error, 1)}
	if !w.out.Scan() || w.out.Text() != "ready" {
		cmd.Process.Kill()
		t.Fatalf("worker %s did not start: %v", role, cmd.Wait())
	}
	go func() {
		for w.out.Scan() {
			w.lines = append(w.lines, w.out.Text())
		}
		w.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return w
}

func (w *worker) wait(t *testing.T) []string {
	t.Helper()
	select {
	case err := <-w.done:
		if err != nil {
			t.Fatalf("worker failed: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("worker did not finish within 2 minutes")
	}
	return w.lines
}

func computations(t *testing.T, dir string) []string {
	b, err := os.ReadFile(filepath.Join(dir, "computations"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// startAll starts n workers of a role and, once all of them are up, lets them go at
// once.
func startAll(t *testing.T, n int, role, url, dir, name string, goroutines int, ttl time.Duration) []*worker {
	t.Helper()
	var ws []*worker
	for range n {
		ws = append(ws, start(t, role, url, dir, name, goroutines, ttl))
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return ws
}

// tally is what a set of workers printed: how many callers got each result, and how
// many lease takeovers they counted.
type tally struct {
	results   map[string]int
	takeovers int
}

// collect waits for the workers and tallies their "result" and "takeovers" lines.
func collect(t *testing.T, ws []*worker) tally {
	t.Helper()
	tl := tally{results: map[string]int{}}
	for _, w := range ws {
		for _, l := range w.wait(t) {
			if v, ok := strings.CutPrefix(l, "result "); ok {
				tl.results[v]++
			}
			if v, ok := strings.CutPrefix(l, "takeovers "); ok {
				n, _ := strconv.Atoi(v)
				tl.takeovers += n
			}
		}
	}
	return tl
}

// Stampede starts procs worker processes with goroutines goroutines each, all asking
// for one cold key of the store at url at once, and checks that exactly one
// computation ran and that every caller got its value.
func Stampede(t *testing.T, url string, procs, goroutines int) {
	dir := t.TempDir()
	name := "proctest/stampede/" + randHex()
	results := collect(t, startAll(t, procs, "stampede", url, dir, name, goroutines, 30*time.Second)).results
	comps := computations(t, dir)
	if len(comps) != 1 {
		t.Fatalf("%d processes x %d goroutines: %d computations (%v), want exactly 1", procs, goroutines, len(comps), comps)
	}
	want := "value-from-" + comps[0]
	if results[want] != procs*goroutines || len(results) != 1 {
		t.Fatalf("results %v, want %d x %q", results, procs*goroutines, want)
	}
}

// KillTakeover starts a worker that takes the lease and computes forever, SIGKILLs it
// mid-computation, and checks that the next caller takes the lease over once it
// expires, computes, and stores a value that later callers get.
func KillTakeover(t *testing.T, url string) {
	dir := t.TempDir()
	name := "proctest/kill/" + randHex()
	const ttl = time.Second
	blocker := start(t, "blocker", url, dir, name, 1, ttl)
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(computations(t, dir)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the blocker never started computing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := blocker.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-blocker.done
	// The dead holder's lease is still there; these must wait for it to expire, then
	// exactly one of them takes over and computes.
	tl := collect(t, startAll(t, 2, "taker", url, dir, name, 4, ttl))
	results, takeovers := tl.results, tl.takeovers
	comps := computations(t, dir)
	if len(comps) != 2 {
		t.Fatalf("computations %v: want the killed one and exactly one takeover", comps)
	}
	want := "value-from-" + comps[1]
	if len(results) != 1 || results[want] != 8 {
		t.Fatalf("results %v, want 8 x %q", results, want)
	}
	if takeovers != 1 {
		t.Fatalf("takeovers reported = %d, want 1", takeovers)
	}
}
