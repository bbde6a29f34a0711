package proctest

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// WaitLimitAcrossProcesses (finding 8 of issue 10) starts a worker that takes the
// calculation lease on a key and holds its computation until released; a caller in
// this process with WaitForCalcTimeout stops waiting for it and computes itself. The
// test asserts on what ran and what was returned: the stuck computation never ends
// before this caller returns, so a caller that waited for it would never return.
func WaitLimitAcrossProcesses(t *testing.T, url string) {
	dir := t.TempDir()
	name := "proctest/waitlimit/" + randHex()
	writeSource(t, dir, "old")
	w := holder(t, url, dir, name, "") // computing, with the lease, until "release"
	ctx := context.Background()
	st, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mine atomic.Int64
	f, err := cachier.Wrap(func(context.Context, string) (string, error) { mine.Add(1); return "computed-by-the-parent", nil },
		cachier.Name(name), cachier.WithStore(st), cachier.WaitForCalcTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// The bound only turns a hang into a failure; the assertions are on what ran.
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	v, err := f.Call(cctx, "the-one-key")
	if err != nil || v != "computed-by-the-parent" {
		t.Fatalf("Call behind a stuck computation = %q, %v; want this process's own result", v, err)
	}
	if s := f.Stats(); mine.Load() != 1 || s.WaitTimeouts != 1 {
		t.Fatalf("%d computations here, stats %+v: want 1 computation after 1 wait timeout", mine.Load(), s)
	}
	if comps := computations(t, dir); len(comps) != 1 {
		t.Fatalf("worker computations %v, want only the stuck one", comps)
	}
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if lines := w.wait(t); len(lines) != 1 || lines[0] != "result v:old" {
		t.Fatalf("the released worker printed %q", lines)
	}
}

// badKeyWorker calls keys 2 (whose entry the parent replaced by a directory) and 1 (a
// healthy cached key) in turn, and prints its hits and bypasses.
func badKeyWorker(ctx context.Context, st store.Store, dir, me string) error {
	fn := func(_ context.Context, x int) (int, error) {
		if err := appendLine(filepath.Join(dir, "computations"), fmt.Sprint(me, ":", x)); err != nil {
			return 0, err
		}
		return x, nil
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil)) // key 2's errors are expected
	f, err := cachier.Wrap(fn, cachier.Name(os.Getenv(envName)), cachier.WithStore(st), cachier.WithLogger(quiet))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for range badKeyRounds {
		for _, x := range []int{2, 1} {
			if v, err := f.Call(ctx, x); err != nil || v != x {
				return fmt.Errorf("Call(%d) = %d, %w", x, v, err)
			}
		}
	}
	s := f.Stats()
	fmt.Printf("hits=%d bypassed=%d\n", s.Hits, s.StoreBypassed)
	return f.Close(ctx)
}

const badKeyRounds = 20

// OneBadKeyAcrossProcesses (finding 11 of issue 10) caches keys 1 and 2 of a function
// in this process, replaces key 2's entry file by a directory, and runs a worker that
// calls key 2 and then key 1, badKeyRounds times: every call of key 1 is a hit, and
// the worker never bypasses the store. url must be a file store's.
func OneBadKeyAcrossProcesses(t *testing.T, url string) {
	dir := t.TempDir()
	name := "proctest/badkey/" + randHex()
	ctx := context.Background()
	st, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x, nil }, cachier.Name(name), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	cdir, ok := f.CacheDir()
	if !ok {
		t.Fatalf("%s is not a file store", url)
	}
	if _, err := f.Call(ctx, 1); err != nil {
		t.Fatal(err)
	}
	before := regularFiles(t, cdir)
	if _, err := f.Call(ctx, 2); err != nil {
		t.Fatal(err)
	}
	planted := 0
	for p := range regularFiles(t, cdir) {
		if !before[p] && filepath.Base(p)[0] != '.' { // key 2's entry: a directory takes its place
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(p, "planted"), 0o700); err != nil {
				t.Fatal(err)
			}
			planted++
		}
	}
	if planted != 1 {
		t.Fatalf("planted %d directories, want key 2's one entry", planted)
	}
	lines := startAll(t, 1, "badkey", url, dir, name, 1, 30*time.Second)[0].wait(t)
	want := fmt.Sprintf("hits=%d bypassed=0", badKeyRounds)
	if len(lines) != 1 || lines[0] != want {
		t.Fatalf("with key 2's entry a directory, the worker printed %q, want %q (computations %v)", lines, want, computations(t, dir))
	}
	for _, c := range computations(t, dir) {
		if strings.HasSuffix(c, ":1") {
			t.Fatalf("the worker computed the healthy key 1: %v", computations(t, dir))
		}
	}
}

// regularFiles lists the regular files under dir.
func regularFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			m[p] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// downStore is a store whose reads, writes and leases fail as a server that is down
// does.
type downStore struct{ store.Store }

var refused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

func (downStore) Get(context.Context, store.Key) (store.Entry, error) { return store.Entry{}, refused }

func (downStore) Set(context.Context, store.Key, store.Entry) error { return refused }

func (downStore) Acquire(context.Context, store.Key, store.Owner, time.Duration) (store.Lease, error) {
	return store.Lease{}, refused
}

const downCallers = 16

// downFlightWorker calls one key from downCallers goroutines while its store fails
// like an unreachable server, with a clock that stands still so the breaker
// stays open. The first run of fn holds until every other caller has joined it
// (each arms a WaitForCalcTimeout timer that never fires); a second run while it
// holds fails the worker. It prints how many runs it counted.
func downFlightWorker(ctx context.Context, st store.Store, dir, me string) error {
	clk := clock.NewFake(time.Now())
	release, second := make(chan struct{}), make(chan struct{})
	var runs atomic.Int64
	fn := func(_ context.Context, x int) (int, error) {
		if x == 7 {
			if err := appendLine(filepath.Join(dir, "computations"), me); err != nil {
				return 0, err
			}
			switch runs.Add(1) {
			case 1:
				<-release
			case 2:
				close(second)
			}
		}
		return x * 2, nil
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f, err := cachier.Wrap(fn, cachier.Name(os.Getenv(envName)), cachier.WithStore(downStore{st}), cachier.WithClock(clk),
		cachier.WaitForCalcTimeout(time.Hour), cachier.WithLogger(quiet))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	waitForGo(dir)
	if v, err := f.Call(ctx, 1); v != 2 || err != nil { // meets the failing store, opens the breaker
		return fmt.Errorf("Call(1) with the store down = %d, %w", v, err)
	}
	if f.Stats().StoreErrors == 0 {
		return fmt.Errorf("the store error was not seen: %+v", f.Stats())
	}
	var wg sync.WaitGroup
	errs := make(chan error, downCallers)
	for range downCallers {
		wg.Go(func() {
			if v, err := f.Call(ctx, 7); v != 14 || err != nil {
				errs <- fmt.Errorf("Call(7) = %d, %v", v, err)
			}
		})
	}
	joined := make(chan struct{})
	go func() { clk.BlockUntil(ctx, downCallers-1); close(joined) }()
	select {
	case <-joined:
	case <-second:
		close(release)
		wg.Wait()
		return fmt.Errorf("a second run of fn started while the first was in flight (%d runs for %d callers)", runs.Load(), downCallers)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	s := f.Stats()
	fmt.Printf("runs=%d bypassed=%d\n", runs.Load(), s.StoreBypassed)
	return nil
}

// SingleFlightWhileDownAcrossProcesses (finding 12 of issue 10) runs procs worker
// processes at once on the store at url, each with its store failing as if the
// server were down (so its breaker is open), and each calling one key from
// downCallers goroutines: each process runs fn exactly once. With no store to
// coordinate through, processes cannot deduplicate among themselves; what must hold,
// in every process at the same time, is single flight within it.
func SingleFlightWhileDownAcrossProcesses(t *testing.T, url string, procs int) {
	dir := t.TempDir()
	name := "proctest/downflight/" + randHex()
	ws := startAll(t, procs, "downflight", url, dir, name, downCallers, 30*time.Second)
	want := fmt.Sprintf("runs=1 bypassed=%d", downCallers)
	for _, w := range ws {
		if lines := w.wait(t); len(lines) != 1 || lines[0] != want {
			t.Fatalf("worker printed %q, want %q", lines, want)
		}
	}
	if comps := computations(t, dir); len(comps) != procs {
		t.Fatalf("computations %v, want one per process", comps)
	}
}
