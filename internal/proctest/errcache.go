package proctest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// errUnavailable is the sentinel the errcall workers' upstream fails with.
var errUnavailable = errors.New("proctest: upstream unavailable")

// errCallWorker calls a function whose upstream fails, with CacheErrors, and prints
// whether the error it got was remembered and still matches the sentinel.
func errCallWorker(ctx context.Context, st store.Store, dir, me string) error {
	if err := cachier.RegisterError(errUnavailable); err != nil {
		return err
	}
	fn := func(_ context.Context, x int) (string, error) {
		if err := appendLine(filepath.Join(dir, "computations"), me); err != nil {
			return "", err
		}
		return "", fmt.Errorf("fetch %d: %w", x, errUnavailable)
	}
	f, err := cachier.Wrap(fn, cachier.Name(os.Getenv(envName)), cachier.WithStore(st),
		cachier.CacheErrors(func(err error) bool { return errors.Is(err, errUnavailable) }, time.Hour))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	waitForGo(dir)
	v, err := f.Call(ctx, 1)
	fmt.Printf("result v=%q remembered=%v sentinel=%v msg=%q\n", v, errors.Is(err, cachier.ErrCached), errors.Is(err, errUnavailable), err)
	return f.Close(ctx)
}

// ErrorRemembered runs two worker processes one after the other on the store at url,
// calling a function that fails, with CacheErrors: the first runs it and gets its
// error; the second does not run it, and gets the remembered error, which matches the
// registered sentinel and carries no value.
func ErrorRemembered(t *testing.T, url string) {
	dir := t.TempDir()
	name := "proctest/errcache/" + randHex()
	var got []string
	for range 2 {
		lines := startAll(t, 1, "errcall", url, dir, name, 1, 30*time.Second)[0].wait(t)
		if len(lines) != 1 {
			t.Fatalf("worker printed %q", lines)
		}
		got = append(got, lines[0])
		os.Remove(filepath.Join(dir, "go"))
	}
	const msg = `msg="fetch 1: proctest: upstream unavailable"`
	want := []string{`result v="" remembered=false sentinel=true ` + msg, `result v="" remembered=true sentinel=true ` + msg}
	if got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("workers printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if comps := computations(t, dir); len(comps) != 1 {
		t.Fatalf("computations %v, want 1: the second process should have read the remembered error", comps)
	}
}
