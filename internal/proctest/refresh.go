package proctest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// pastClock stamps entries an hour ago, so that a precached value is stale for
// everyone else.
type pastClock struct{ clock.Clock }

func (c pastClock) Now() time.Time { return c.Clock.Now().Add(-time.Hour) }

const staleValue = "stale"

// refreshWorker serves a stale value to all its goroutines at once (NextTime), then
// keeps calling until the refreshed value arrives, however it is computed.
func refreshWorker(ctx context.Context, st store.Store, dir, me string) error {
	compute := func(_ context.Context, x int) (string, error) {
		if err := appendLine(filepath.Join(dir, "computations"), me); err != nil {
			return "", err
		}
		// The refresh lands only after every worker's first calls were answered, so
		// that "the stale value at once" does not depend on how fast a busy machine
		// schedules the other workers.
		if err := awaitServed(dir); err != nil {
			return "", err
		}
		return "value-from-" + me, nil
	}
	f, err := cachier.Wrap(compute, cachier.Name(os.Getenv(envName)), cachier.WithStore(st),
		cachier.StaleAfter(time.Minute), cachier.NextTime(true))
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv(envGoroutines))
	fmt.Println("ready")
	for {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			v, err := f.Call(ctx, 1)
			if err == nil && v != staleValue {
				err = fmt.Errorf("first call got %q, want the stale value at once", v)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "served-"+me), nil, 0o600); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := f.Call(ctx, 1)
		if err != nil {
			return err
		}
		if v != staleValue {
			fmt.Println("result", v)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the background refresh never landed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// awaitServed waits until every worker has written its served- file (RefreshOnce
// writes the number of workers to dir/procs), polling the directory.
func awaitServed(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "procs"))
	if err != nil {
		return err
	}
	procs, err := strconv.Atoi(string(b))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		served, err := filepath.Glob(filepath.Join(dir, "served-*"))
		if err != nil {
			return err
		}
		if len(served) >= procs {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d workers were served the stale value within a minute", len(served), procs)
		}
		time.Sleep(time.Millisecond)
	}
}

// RefreshOnce precaches a stale value on the store at url, then has procs worker
// processes with goroutines goroutines each ask for it with NextTime: every caller
// gets the stale value at once, exactly one background refresh runs across all the
// processes, and every process then sees its result.
func RefreshOnce(t *testing.T, url string, procs, goroutines int) {
	dir := t.TempDir()
	name := "proctest/refresh/" + randHex()
	ctx := context.Background()
	st, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := cachier.Wrap(func(context.Context, int) (string, error) { return "", nil },
		cachier.Name(name), cachier.WithStore(st), cachier.WithClock(pastClock{clock.Real()}))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Precache(ctx, 1, staleValue); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "procs"), []byte(strconv.Itoa(procs)), 0o600); err != nil {
		t.Fatal(err)
	}
	results := collect(t, startAll(t, procs, "refresh", url, dir, name, goroutines, 30*time.Second)).results
	comps := computations(t, dir)
	if len(comps) != 1 {
		t.Fatalf("%d processes x %d goroutines on a stale entry: %d background refreshes (%v), want exactly 1", procs, goroutines, len(comps), comps)
	}
	if want := "value-from-" + comps[0]; results[want] != procs || len(results) != 1 {
		t.Fatalf("results %v, want %d x %q", results, procs, want)
	}
}
