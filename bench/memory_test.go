package bench

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
	"github.com/maypok86/otter/v2"
	"github.com/viccon/sturdyc"
)

// Report is the result every memory subject memoizes: a small struct, so that the
// subjects that keep decoded values (all of them in memory) are compared fairly.
type report struct {
	Title string
	Rows  []int
}

func makeReport(_ context.Context, n int) (report, error) {
	return report{Title: "report", Rows: []int{n, n + 1, n + 2}}, nil
}

// memo is the hand-written memo a Go programmer would write: a mutex and a map.
type memo struct {
	mu sync.Mutex
	m  map[int]report
}

func (m *memo) get(ctx context.Context, n int) (report, error) {
	m.mu.Lock()
	r, ok := m.m[n]
	m.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := makeReport(ctx, n)
	if err != nil {
		return r, err
	}
	m.mu.Lock()
	m.m[n] = r
	m.mu.Unlock()
	return r, nil
}

// missKey hands out keys never used before in this process, for miss subjects.
var missKey atomic.Int64

func memorySubjects(t *testing.T) []subject {
	ctx := context.Background()
	f, err := cachier.Wrap(makeReport, cachier.Name("bench/memory"), cachier.WithStore(memstore.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	mm := &memo{m: map[int]report{}}
	oc, err := otter.New(&otter.Options[int, report]{})
	if err != nil {
		t.Fatal(err)
	}
	loader := otter.LoaderFunc[int, report](makeReport)
	sc := sturdyc.New[report](10_000_000, 16, time.Hour, 10)
	const hot = 1
	hotKey := strconv.Itoa(hot)
	sturdyGet := func(ctx context.Context, n int, key string) (report, error) {
		return sc.GetOrFetch(ctx, key, func(ctx context.Context) (report, error) { return makeReport(ctx, n) })
	}
	for _, warm := range []func() error{
		func() error { _, err := f.Call(ctx, hot); return err },
		func() error { _, err := mm.get(ctx, hot); return err },
		func() error { _, err := oc.Get(ctx, hot, loader); return err },
		func() error { _, err := sturdyGet(ctx, hot, hotKey); return err },
	} {
		if err := warm(); err != nil {
			t.Fatal(err)
		}
	}

	type impl struct {
		name string
		base bool
		note string
		get  func(ctx context.Context, n int) (report, error)
	}
	impls := []impl{
		{"cachier (memstore)", true, "", func(ctx context.Context, n int) (report, error) { return f.Call(ctx, n) }},
		{"mutex+map memo", false, "hand-written", mm.get},
		{"github.com/viccon/sturdyc", false, "GetOrFetch, string keys", func(ctx context.Context, n int) (report, error) {
			if n == hot {
				return sturdyGet(ctx, n, hotKey)
			}
			return sturdyGet(ctx, n, strconv.Itoa(n))
		}},
		{"github.com/maypok86/otter/v2", false, "Get with a loader: the raw in-memory floor", func(ctx context.Context, n int) (report, error) {
			return oc.Get(ctx, n, loader)
		}},
	}
	var subs []subject
	for _, op := range []string{"hit", "miss", "parallel hit"} {
		for _, im := range impls {
			get := im.get
			s := subject{op: op, impl: im.name, base: im.base, note: im.note}
			switch op {
			case "hit":
				s.run = func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if _, err := get(ctx, hot); err != nil {
							must(b, "get", err)
						}
					}
				}
			case "miss":
				s.run = func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if _, err := get(ctx, int(missKey.Add(1))+1_000_000); err != nil {
							must(b, "get", err)
						}
					}
				}
			case "parallel hit":
				s.run = func(b *testing.B) {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := get(ctx, hot); err != nil {
								must(b, "get", err)
							}
						}
					})
				}
			}
			subs = append(subs, s)
		}
	}
	addNote("memory: every subject keeps the decoded value in process; cachier's miss does not encode it either (memstore makes the bytes on their first read as bytes, for a Batch or package named), and a caller with context.Background computes on its own goroutine.")
	addNote("memory: the issue's target for the hit is 2x the hand-written memo. What cachier does beyond the memo's one map lookup is per-call work in the core, not the store (memstore's own hit is within about 1.2x of a memo: go test -bench GetLive ./store/memstore/): it resolves the call's options, finds the argument's key (a remembered SHA-256 digest), reads the store's shard, checks staleness and counters, and counts. Closing the gap needs a typed first level inside Func for comparable arguments.")
	return subs
}
