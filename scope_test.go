package cachier_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// bareDriver is a driver of the four required methods only: no Swapper, so its
// leases are kept in the process.
type bareDriver struct {
	mu sync.Mutex
	m  map[store.Key]store.Entry
}

func (d *bareDriver) Get(_ context.Context, k store.Key) (store.Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[k]
	if !ok {
		return store.Entry{}, store.ErrNotFound
	}
	return e, nil
}

func (d *bareDriver) Set(_ context.Context, k store.Key, e store.Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[k] = e
	return nil
}

func (d *bareDriver) Delete(_ context.Context, k store.Key) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, k)
	return nil
}

func (d *bareDriver) Close() error { return nil }

// A store without an atomic primitive says so, in Stats and once in the Verbose log.
func TestSingleFlightScopeReported(t *testing.T) {
	fn := func(_ context.Context, x int) (int, error) { return x, nil }
	for _, tc := range []struct {
		name string
		st   store.Driver
		want string
	}{
		{"bare", &bareDriver{m: map[store.Key]store.Entry{}}, "single flight per process only"},
		{"mem", memstore.New(nil), "in-process store: no leases needed"},
		{"file", newFileStore(t), "shared across processes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logger, out := testLogger()
			f, err := cachier.Wrap(fn, cachier.Name("scope/"+tc.name), cachier.WithStore(tc.st), cachier.Verbose(), cachier.WithLogger(logger))
			if err != nil {
				t.Fatal(err)
			}
			f.Call(context.Background(), 1)
			f.Call(context.Background(), 2)
			if got := f.Stats().SingleFlight; got != tc.want {
				t.Errorf("Stats().SingleFlight = %q, want %q", got, tc.want)
			}
			n := strings.Count(out.String(), "single flight per process only")
			if want := map[bool]int{true: 1, false: 0}[tc.name == "bare"]; n != want {
				t.Errorf("Verbose said %d times that single flight is per process only, want %d:\n%s", n, want, out.String())
			}
		})
	}
}
