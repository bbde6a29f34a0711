// Package missbench is what the stores' BenchmarkMissVsRaw share: a cachier.Func over
// the store whose calls, a miss and a hit, storetest.Alternate times in turn with the
// engine's own commands for the same work, from the same run.
//
// It is a package of its own, not part of storetest, because it uses package cachier,
// which imports filestore, whose tests import storetest.
package missbench

import (
	"bytes"
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// Value is the value both sides read and write: bench/'s payload, 256 bytes.
var Value = bytes.Repeat([]byte("cachier!"), 32)

var seq atomic.Int64

// run tells this process's keys from those of earlier runs on a shared server.
var run = strconv.FormatInt(time.Now().UnixNano(), 36)

// Raw is the engine's own commands, on the same server as the store, that a cachier
// miss and hit are compared with. Each is given the key to use, the same on both
// sides: "hot", which Set stored, or a new "miss-..." key.
type Raw struct {
	// Set stores Value under key.
	Set func(key string) error
	// Miss reads key, which must find nothing, and then stores Value under it, as a
	// caller of the engine does on a miss.
	Miss func(key string) error
	// Hit reads key, which Set stored.
	Hit func(key string) error
}

// Run wraps a function that returns Value, named name and cached on d, and runs two
// sub-benchmarks of b, each alternating a call with raw's commands (storetest.Alternate):
//
//   - miss: a call on a new key (look up, take the lease, compute at once, store and
//     release) against raw.Miss of a new key;
//   - hit: a call of a stored key against raw.Hit of a stored key.
//
// Each fails if a store error is counted, if a call on the miss side is not a miss,
// or if one on the hit side is. d is not closed.
func Run(b *testing.B, name string, d store.Driver, raw Raw) {
	b.Helper()
	ctx := context.Background()
	f, err := cachier.Wrap(func(context.Context, string) ([]byte, error) { return Value, nil },
		cachier.Name(name), cachier.WithStore(store.Adapt(d)))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Call(ctx, "hot"); err != nil {
		b.Fatal(err)
	}
	if err := raw.Set("hot"); err != nil {
		b.Fatal(err)
	}
	newKey := func() string { return "miss-" + run + "-" + strconv.FormatInt(seq.Add(1), 10) }
	ops := []struct {
		name       string
		cachier    func() error
		raw        func() error
		wantMisses bool
	}{
		{"miss", func() error {
			_, err := f.Call(ctx, newKey())
			return err
		}, func() error { return raw.Miss(newKey()) }, true},
		{"hit", func() error {
			_, err := f.Call(ctx, "hot")
			return err
		}, func() error { return raw.Hit("hot") }, false},
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			before := f.Stats()
			storetest.Alternate(b, op.cachier, op.raw)
			st := f.Stats().Sub(before)
			want := uint64(0)
			if op.wantMisses {
				want = uint64(b.N)
			}
			if st.StoreErrors != 0 || st.Misses != want {
				b.Fatalf("%d store errors, %d misses in %d calls; want none, %d", st.StoreErrors, st.Misses, b.N, want)
			}
		})
	}
}
