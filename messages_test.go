package cachier_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

// TestResultMessages: messages about results never suggest argument options, an
// oversize result is logged once per function, and CleanupStale needs StaleAfter
// (issue 12 item 9).
func TestResultMessages(t *testing.T) {
	st := memstore.New(nil)
	_, err := cachier.Wrap(func(context.Context, int) (error, error) { return nil, nil }, cachier.Name("res-error"), cachier.WithStore(st))
	if !errors.Is(err, cachier.ErrUncacheable) || strings.Contains(err.Error(), "WithKey") || !strings.Contains(err.Error(), "WithCodec") {
		t.Errorf("result type error: %v; want ErrUncacheable suggesting a Codec, not WithKey", err)
	}
	_, err = cachier.Wrap(func(context.Context, int) (struct{ C chan int }, error) { return struct{ C chan int }{}, nil }, cachier.Name("res-chan"), cachier.WithStore(st))
	if !errors.Is(err, cachier.ErrUncacheable) || strings.Contains(err.Error(), "WithKey") {
		t.Errorf("result with a chan: %v; want ErrUncacheable without WithKey", err)
	}
	_, err = cachier.Wrap(func(context.Context, chan int) (int, error) { return 0, nil }, cachier.Name("arg-chan"), cachier.WithStore(st))
	if !errors.Is(err, cachier.ErrUnkeyable) || !strings.Contains(err.Error(), "WithKey") {
		t.Errorf("argument chan: %v; want ErrUnkeyable suggesting WithKey", err)
	}

	log, buf := testLogger()
	f, err := cachier.Wrap(func(_ context.Context, n int) (string, error) { return strings.Repeat("x", 10+n), nil },
		cachier.Name("oversize"), cachier.WithStore(st), cachier.EntrySizeLimit(1), cachier.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	for n := range 3 {
		if _, err := f.Call(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(buf.String(), "larger than EntrySizeLimit"); got != 1 || !strings.Contains(buf.String(), "level=WARN") {
		t.Errorf("%d log lines about oversize results, want 1 at Warn:\n%s", got, buf)
	}
	if s := f.Stats(); s.SizeRejections != 3 {
		t.Errorf("SizeRejections = %d, want 3", s.SizeRejections)
	}

	_, err = cachier.Wrap(func(context.Context, int) (int, error) { return 0, nil }, cachier.Name("cleanup"), cachier.WithStore(st), cachier.CleanupStale(time.Minute))
	if !errors.Is(err, cachier.ErrOption) || !strings.Contains(err.Error(), "StaleAfter") {
		t.Errorf("CleanupStale without StaleAfter: %v; want ErrOption naming StaleAfter", err)
	}
	if _, err = cachier.Wrap(func(context.Context, int) (int, error) { return 0, nil }, cachier.Name("cleanup"), cachier.WithStore(st),
		cachier.CleanupStale(time.Minute), cachier.StaleAfter(time.Hour)); err != nil {
		t.Errorf("CleanupStale with StaleAfter: %v", err)
	}
}
