package proctest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// tagCall is a worker that calls a tagged function once and prints its result.
func tagCall(ctx context.Context, st store.Store, dir, me string) error {
	name := os.Getenv(envName)
	compute := func(_ context.Context, x int) (string, error) {
		if err := appendLine(filepath.Join(dir, "computations"), me); err != nil {
			return "", err
		}
		return "value-from-" + me, nil
	}
	f, err := cachier.Wrap(compute, cachier.Name(name), cachier.WithStore(st), cachier.Tags(name+"/tag"))
	if err != nil {
		return err
	}
	v, err := f.Call(ctx, 1)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	fmt.Println("result", v)
	return nil
}

// TagAcrossProcesses checks that a tag invalidated by one process makes the next call
// of another process recompute, on the store at url.
func TagAcrossProcesses(t *testing.T, url string) {
	dir := t.TempDir()
	name := "proctest/tags/" + randHex()
	run := func(role string) string {
		t.Helper()
		for v := range collect(t, []*worker{start(t, role, url, dir, name, 1, 0)}).results {
			return v
		}
		return ""
	}
	first := run("tagcall")
	if again := run("tagcall"); again != first {
		t.Fatalf("second process recomputed (%q, %q): the entry was not shared", first, again)
	}
	run("invalidate")
	after := run("tagcall")
	if after == first {
		t.Fatalf("after another process invalidated the tag, the old value %q was served", first)
	}
	if n := len(computations(t, dir)); n != 2 {
		t.Fatalf("%d computations, want 2", n)
	}
}

// Invalidation checks tags, prefixes, per-entry limits and dependents through cachier
// on st, in one process.
func Invalidation(t *testing.T, d store.Driver) {
	st := store.Adapt(d)
	ctx := context.Background()
	ns := "proctest/inv/" + randHex()
	var calls [3]atomic.Int64
	wrap := func(i int, name string, opts ...cachier.Option) *cachier.Func[int, int] {
		t.Helper()
		f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return int(calls[i].Add(1)), nil },
			append([]cachier.Option{cachier.Name(ns + "/" + name), cachier.WithStore(st)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	want := func(what string, a, b, c int64) {
		t.Helper()
		if calls[0].Load() != a || calls[1].Load() != b || calls[2].Load() != c {
			t.Fatalf("%s: computations %d %d %d, want %d %d %d", what, calls[0].Load(), calls[1].Load(), calls[2].Load(), a, b, c)
		}
	}
	tagged := wrap(0, "tagged", cachier.Tags(ns+"/static"),
		cachier.TagsOf(func(x int) []string { return []string{fmt.Sprintf("%s/x:%d", ns, x)} }),
		cachier.ResultTags(func(x, r int) []string { return []string{fmt.Sprintf("%s/parity:%d", ns, x%2)} }),
		cachier.Prefix(func(x int) string { return fmt.Sprintf("%s/group:%d", ns, x/10) }))
	child := wrap(1, "child", cachier.DependsOn(tagged))
	grandchild := wrap(2, "grandchild", cachier.DependsOn(child))
	all := func() {
		for _, x := range []int{1, 2, 11} {
			tagged.Call(ctx, x)
		}
		child.Call(ctx, 1)
		grandchild.Call(ctx, 1)
	}
	all()
	all()
	want("cold then warm", 3, 1, 1)
	mustNil := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustNil(tagged.InvalidateTags(ctx, 2)) // x:2
	all()
	want("tag from the argument", 4, 1, 1)
	mustNil(cachier.InvalidateTags(ctx, st, ns+"/parity:1")) // 1 and 11
	all()
	want("tag from the result", 6, 1, 1)
	mustNil(cachier.InvalidatePrefix(ctx, st, ns+"/group:1")) // 11
	all()
	want("prefix", 7, 1, 1)
	mustNil(cachier.InvalidateTags(ctx, st, ns+"/static"))
	all()
	want("static tag", 10, 1, 1)
	mustNil(tagged.Clear(ctx)) // reaches child and grandchild
	all()
	want("parent cleared", 13, 2, 2)
	mustNil(child.Invalidate(ctx, 99)) // reaches grandchild only
	all()
	want("middle invalidated", 13, 2, 3)
}
