package proctest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// Batch stampede: each worker asks, from two goroutines in opposite orders, for the
// shared keys 0..batchShared-1 and for batchOwn keys of its own. The own keys make
// every worker reach its batch function while the others hold leases on the shared
// keys: each worker's first call of the function waits until every worker has called
// it once, so that the batches really overlap, and then the workers wait for the
// shared keys that others hold.
const (
	batchShared = 40
	batchOwn    = 3
	envWorker   = "CACHIER_PROCTEST_WORKER"
)

// BatchStampede starts procs worker processes whose batches overlap, on the store at
// url, and checks that every key was computed exactly once among them and that every
// caller got the value of that one computation.
func BatchStampede(t *testing.T, url string, procs int) {
	t.Helper()
	dir := t.TempDir()
	name := "proctest/batch/" + randHex()
	var ws []*worker
	for w := range procs {
		t.Setenv(envWorker, strconv.Itoa(w))
		t.Setenv(envGoroutines, strconv.Itoa(procs)) // the barrier's size
		ws = append(ws, start(t, "batch", url, dir, name, procs, 30*time.Second))
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got := map[int]map[string]int{} // key -> value -> callers
	for _, w := range ws {
		for _, l := range w.wait(t) {
			var k int
			var v string
			if _, err := fmt.Sscanf(l, "result %d %s", &k, &v); err != nil {
				continue
			}
			if got[k] == nil {
				got[k] = map[string]int{}
			}
			got[k][v]++
		}
	}
	by := map[int][]string{} // key -> workers that computed it
	for _, l := range computations(t, dir) {
		k, who, ok := strings.Cut(l, "@")
		n, err := strconv.Atoi(k)
		if !ok || err != nil {
			t.Fatalf("bad computation line %q", l)
		}
		by[n] = append(by[n], who)
	}
	want := batchShared + procs*batchOwn
	if len(by) != want {
		t.Fatalf("%d keys computed, want %d", len(by), want)
	}
	for k, whos := range by {
		if len(whos) != 1 {
			t.Fatalf("key %d computed %d times (by %v), want exactly once", k, len(whos), whos)
		}
		v := fmt.Sprintf("k%d-by-%s", k, whos[0])
		callers := 2 // the two goroutines of each worker that asked for k
		if k < batchShared {
			callers = 2 * procs
		}
		if len(got[k]) != 1 || got[k][v] != callers {
			t.Fatalf("key %d: callers got %v, want %d x %q", k, got[k], callers, v)
		}
	}
}

// batchWorker is one process of BatchStampede.
func batchWorker(ctx context.Context, st store.Store, dir, me string) error {
	w, _ := strconv.Atoi(os.Getenv(envWorker))
	procs, _ := strconv.Atoi(os.Getenv(envGoroutines))
	var first sync.Once
	fn := func(_ context.Context, args []int) (map[int]string, error) {
		var lines []string
		out := make(map[int]string, len(args))
		for _, a := range args {
			lines = append(lines, fmt.Sprintf("%d@%s", a, me))
			out[a] = fmt.Sprintf("k%d-by-%s", a, me)
		}
		if err := appendLine(filepath.Join(dir, "computations"), strings.Join(lines, "\n")); err != nil {
			return nil, err
		}
		var err error
		first.Do(func() { err = barrier(ctx, dir, "computing-"+me, procs) })
		return out, err
	}
	b, err := cachier.WrapBatch(fn, cachier.Name(os.Getenv(envName)), cachier.WithStore(st), cachier.LeaseTTL(30*time.Second))
	if err != nil {
		return err
	}
	args := make([]int, 0, batchShared+batchOwn)
	for k := range batchShared {
		args = append(args, k)
	}
	for i := range batchOwn {
		args = append(args, 1000+w*batchOwn+i)
	}
	rev := slices.Clone(args)
	slices.Reverse(rev)
	fmt.Println("ready")
	if err := waitFile(ctx, filepath.Join(dir, "go")); err != nil {
		return err
	}
	var wg sync.WaitGroup
	results := make([]map[int]string, 2)
	errs := make([]error, 2)
	for i, a := range [][]int{args, rev} {
		wg.Go(func() { results[i], errs[i] = b.Call(ctx, a) })
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			return errs[i]
		}
		if len(results[i]) != len(args) {
			return fmt.Errorf("got %d results, want %d", len(results[i]), len(args))
		}
		for k, v := range results[i] {
			fmt.Println("result", k, v)
		}
	}
	return nil
}

// barrier marks this process as arrived and waits until n processes have.
func barrier(ctx context.Context, dir, mark string, n int) error {
	if err := os.WriteFile(filepath.Join(dir, mark), nil, 0o600); err != nil {
		return err
	}
	for {
		m, err := filepath.Glob(filepath.Join(dir, "computing-*"))
		if err != nil || len(m) >= n {
			return err
		}
		if err := pause(ctx); err != nil {
			return err
		}
	}
}

// waitFile waits until path exists.
func waitFile(ctx context.Context, path string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if err := pause(ctx); err != nil {
			return err
		}
	}
}

// pause yields a millisecond between two looks at the shared directory.
func pause(ctx context.Context) error {
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
