package proctest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// closeRefreshWorker is a short-lived process: it is served a stale value (NextTime),
// which starts a background refresh against a slow upstream, and then exits at once,
// closing the Func and then its store, as the README says a service should.
func closeRefreshWorker(ctx context.Context, st store.Store, dir, me string) error {
	closing := make(chan struct{})
	compute := func(_ context.Context, x int) (string, error) {
		if err := appendLine(filepath.Join(dir, "computations"), me); err != nil {
			return "", err
		}
		<-closing                          // the process is on its way out
		time.Sleep(100 * time.Millisecond) // a slow upstream, still answering
		return "value-from-" + me, nil
	}
	f, err := cachier.Wrap(compute, cachier.Name(os.Getenv(envName)), cachier.WithStore(st),
		cachier.StaleAfter(time.Minute), cachier.NextTime(true))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	waitForGo(dir)
	v, err := f.Call(ctx, 1)
	if err != nil {
		return err
	}
	if v != staleValue {
		return fmt.Errorf("got %q, want the stale value at once", v)
	}
	close(closing)
	if err := f.Close(ctx); err != nil {
		return err
	}
	fmt.Println("closed")
	return nil // work closes the store after the Func
}

func waitForGo(dir string) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// CloseAfterRefresh precaches a stale value on the store at url and runs one worker
// process that is served it with NextTime, which starts a background refresh, and
// then closes its Func and store and exits. Closing waits for the refresh: its result
// is in the store for the next process, and no calculation lease is left behind.
func CloseAfterRefresh(t *testing.T, url string) {
	dir := t.TempDir()
	name := "proctest/close/" + randHex()
	ctx := context.Background()
	st, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	opts := []cachier.Option{cachier.Name(name), cachier.WithStore(st)}
	f, err := cachier.Wrap(func(context.Context, int) (string, error) { return "computed-by-the-parent", nil },
		append(opts, cachier.WithClock(pastClock{clock.Real()}))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Precache(ctx, 1, staleValue); err != nil {
		t.Fatal(err)
	}
	lines := startAll(t, 1, "closerefresh", url, dir, name, 1, 30*time.Second)[0].wait(t)
	if len(lines) != 1 || lines[0] != "closed" {
		t.Fatalf("worker printed %q, want closed", lines)
	}
	comps := computations(t, dir)
	if len(comps) != 1 {
		t.Fatalf("computations %v, want the one background refresh", comps)
	}
	g, err := cachier.Wrap(func(context.Context, int) (string, error) { return "computed-by-the-parent", nil },
		append(opts, cachier.StaleAfter(time.Minute))...)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := g.Call(ctx, 1); v != "value-from-"+comps[0] || err != nil {
		t.Fatalf("after the worker closed: %q, %v; want its refresh %q", v, err, "value-from-"+comps[0])
	}
	for l, err := range st.Leases(ctx, name) {
		t.Fatalf("the closed worker left a lease: %+v, %v", l, err)
	}
}
