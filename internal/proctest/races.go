package proctest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// envAhead, when set, runs a holdcompute worker on a clock that far ahead.
const envAhead = "CACHIER_PROCTEST_CLOCK_AHEAD"

// aheadClock is the real clock, read that far ahead (a machine whose clock runs fast).
type aheadClock struct {
	clock.Clock
	by time.Duration
}

func (c aheadClock) Now() time.Time { return c.Clock.Now().Add(c.by) }

// readSource returns what the "source" file in dir holds: the data a cached function
// reads, which the parent changes.
func readSource(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "source"))
	return strings.TrimSpace(string(b)), err
}

func writeSource(t *testing.T, dir, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "source"), []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
}

// holdWorker computes one key: it reads the source, counts the computation, and holds
// (with the calculation lease) until the parent creates the "release" file; then it
// prints its result.
func holdWorker(ctx context.Context, st store.Store, dir, me string) error {
	compute := func(_ context.Context, key string) (string, error) {
		v, err := readSource(dir)
		if err != nil {
			return "", err
		}
		if err := appendLine(filepath.Join(dir, "computations"), me); err != nil {
			return "", err
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "release")); err == nil {
				return "v:" + v, nil
			}
			time.Sleep(time.Millisecond) // the parent's signal is a file
		}
	}
	opts := []cachier.Option{cachier.Name(os.Getenv(envName)), cachier.WithStore(st)}
	if a := os.Getenv(envAhead); a != "" {
		d, err := time.ParseDuration(a)
		if err != nil {
			return err
		}
		opts = append(opts, cachier.WithClock(aheadClock{clock.Real(), d}))
	}
	g, err := cachier.Wrap(compute, opts...)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	v, err := g.Call(ctx, "the-one-key")
	if err != nil {
		return err
	}
	fmt.Println("result", v)
	return nil
}

// holder starts a holdcompute worker and waits until it computes, holding the lease.
func holder(t *testing.T, url, dir, name, ahead string) *worker {
	t.Helper()
	if ahead != "" {
		t.Setenv(envAhead, ahead)
	}
	w := start(t, "holdcompute", url, dir, name, 1, 30*time.Second)
	deadline := time.Now().Add(time.Minute)
	for len(computations(t, dir)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the worker never started computing")
		}
		time.Sleep(time.Millisecond) // a process to wait for, not a race to paper over
	}
	return w
}

// reader wraps, in the parent, the function the workers compute: it reads the source
// and counts its computations apart from the workers'.
func reader(t *testing.T, url, dir, name string) (*cachier.Func[string, string], store.Store) {
	t.Helper()
	st, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f, err := cachier.Wrap(func(_ context.Context, key string) (string, error) {
		v, err := readSource(dir)
		if err == nil {
			err = appendLine(filepath.Join(dir, "computations"), "parent")
		}
		return "v:" + v, err
	}, cachier.Name(name), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	return f, st
}

func release(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func workerResult(t *testing.T, w *worker) string {
	t.Helper()
	for _, l := range w.wait(t) {
		if v, ok := strings.CutPrefix(l, "result "); ok {
			return v
		}
	}
	t.Fatal("the worker printed no result")
	return ""
}

// InvalidateDuringComputation checks, on the store at url, that a worker process
// whose computation read the data before it changed and before this process called
// Invalidate (or Clear, with clear set) leaves no result that this process is served
// afterwards.
func InvalidateDuringComputation(t *testing.T, url string, clear bool) {
	dir := t.TempDir()
	name := "proctest/invrace/" + randHex()
	writeSource(t, dir, "1")
	w := holder(t, url, dir, name, "")
	f, _ := reader(t, url, dir, name)
	ctx := context.Background()
	writeSource(t, dir, "2")
	var err error
	if clear {
		err = f.Clear(ctx)
	} else {
		err = f.Invalidate(ctx, "the-one-key")
	}
	if err != nil {
		t.Fatal(err)
	}
	release(t, dir)
	if v := workerResult(t, w); v != "v:1" {
		t.Fatalf("the worker got %q, want v:1", v)
	}
	for range 3 {
		if v, err := f.Call(ctx, "the-one-key"); v != "v:2" || err != nil {
			t.Fatalf("after the invalidation: %q, %v; the other process's older result was kept", v, err)
		}
	}
}

// RefreshWhileAnotherComputes checks, on the store at url, that Refresh in this
// process, asked while a worker process computes from older data, answers with its
// own computation, even when the worker's clock runs ahead (ahead, a duration, or "").
func RefreshWhileAnotherComputes(t *testing.T, url, ahead string) {
	dir := t.TempDir()
	name := "proctest/refreshrace/" + randHex()
	writeSource(t, dir, "1")
	w := holder(t, url, dir, name, ahead)
	f, _ := reader(t, url, dir, name)
	ctx := context.Background()
	writeSource(t, dir, "2")
	done := make(chan string, 1)
	go func() {
		v, err := f.Refresh(ctx, "the-one-key")
		if err != nil {
			v = err.Error()
		}
		done <- v
	}()
	deadline := time.Now().Add(time.Minute)
	for f.Stats().Waits == 0 { // Refresh waits for the worker's lease
		if time.Now().After(deadline) {
			t.Fatal("Refresh never waited for the worker's lease")
		}
		time.Sleep(time.Millisecond)
	}
	release(t, dir)
	if v := workerResult(t, w); v != "v:1" {
		t.Fatalf("the worker got %q, want v:1", v)
	}
	if v := <-done; v != "v:2" {
		t.Fatalf("Refresh returned %q (computations %v): the other process's computation began before it", v, computations(t, dir))
	}
	if v, _ := f.Call(ctx, "the-one-key"); v != "v:2" {
		t.Fatalf("after Refresh: %q", v)
	}
}
