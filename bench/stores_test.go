package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// rawOps is the raw driver doing what cachier does on a store: read one value, and on
// a miss read nothing and write one.
type rawOps struct {
	impl string
	note string
	// set stores payload under key (used once, for the hot key).
	set func(ctx context.Context, key string) error
	// get reads key; found reports whether it was there.
	get func(ctx context.Context, key string) (found bool, err error)
}

// storeSubjects returns the hit and miss subjects of cachier on st against each of
// the raw or peer operations, all on the same server. op is prefixed to the
// operation names (an engine name for the SQL section).
func storeSubjects(t *testing.T, op, name string, d store.Driver, peers ...rawOps) []subject {
	t.Helper()
	st := store.Adapt(d)
	ctx := context.Background()
	f, err := cachier.Wrap(makePayload, cachier.Name("bench/"+name), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Call(ctx, "hot"); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if err := p.set(ctx, "bench-hot"); err != nil {
			t.Fatalf("%s: set: %v", p.impl, err)
		}
	}
	impl := "cachier (" + name + "store)"
	hit, miss := "hit", "miss"
	if op != "" {
		hit, miss = op+" hit", op+" miss"
	}
	subs := []subject{{op: hit, impl: impl, base: true, run: func(b *testing.B) {
		b.ReportAllocs()
		before := f.Stats()
		for b.Loop() {
			if _, err := f.Call(ctx, "hot"); err != nil {
				must(b, "call", err)
			}
		}
		// The miss subjects share f: compare with the counts before this run.
		if d := f.Stats().Sub(before); d.StoreErrors != 0 || d.Misses != 0 {
			must(b, "stats", fmt.Errorf("%d store errors and %d misses in a hit benchmark", d.StoreErrors, d.Misses))
		}
	}}}
	for _, p := range peers {
		subs = append(subs, subject{op: hit, impl: p.impl, note: p.note, run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				found, err := p.get(ctx, "bench-hot")
				must(b, "get", err)
				if !found {
					must(b, "get", errors.New("hot key missing"))
				}
			}
		}})
	}
	subs = append(subs, subject{op: miss, impl: impl, base: true, run: func(b *testing.B) {
		b.ReportAllocs()
		before := f.Stats().StoreErrors
		for b.Loop() {
			if _, err := f.Call(ctx, "miss-"+strconv.FormatInt(missKey.Add(1), 10)); err != nil {
				must(b, "call", err)
			}
		}
		if f.Stats().StoreErrors != before {
			must(b, "stats", errors.New("store errors in a miss benchmark"))
		}
	}})
	for _, p := range peers {
		subs = append(subs, subject{op: miss, impl: p.impl, note: p.note, run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k := "bench-miss-" + strconv.FormatInt(missKey.Add(1), 10)
				found, err := p.get(ctx, k)
				must(b, "get", err)
				if found {
					must(b, "get", errors.New(k+" exists"))
				}
				must(b, "set", p.set(ctx, k))
			}
		}})
	}
	return subs
}
