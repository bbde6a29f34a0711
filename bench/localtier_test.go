package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	rediscache "github.com/go-redis/cache/v9"
	"github.com/maypok86/otter/v2"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
	"github.com/cachier-go/cachier/store/redisstore"
)

// localTierSubjects: a hit of cachier's local tier in front of Redis beside a memory
// hit and the peers' local caches in front of Redis (issue 13). rueidis client-side
// caching and sturdyc's distributed storage are not measured yet.
func localTierSubjects(t *testing.T) []subject {
	ctx := context.Background()
	c := redisClient(t)
	st, err := redisstore.New(c, &redisstore.Options{Prefix: "bench-tier"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tiered, err := cachier.Wrap(makeReport, cachier.Name("bench/tier"), cachier.WithStore(st), cachier.LocalTier(10_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := cachier.Wrap(makeReport, cachier.Name("bench/tier-mem"), cachier.WithStore(memstore.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	rc := rediscache.New(&rediscache.Options{Redis: c, LocalCache: rediscache.NewTinyLFU(10_000, time.Minute)})
	oc, err := otter.New(&otter.Options[int, report]{})
	if err != nil {
		t.Fatal(err)
	}
	loader := otter.LoaderFunc[int, report](makeReport)
	const hot = 1
	r, _ := makeReport(ctx, hot)
	if err := rc.Set(&rediscache.Item{Ctx: ctx, Key: "rc-tier:1", Value: r, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for tiered.Stats().LocalHits == 0 { // the tier serves once its first reconcile is done
		if _, err := tiered.Call(ctx, hot); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	mem.Call(ctx, hot)
	oc.Get(ctx, hot, loader)
	impls := []struct {
		name string
		base bool
		note string
		get  func(ctx context.Context) error
	}{
		{"cachier LocalTier over Redis", true, "", func(ctx context.Context) error { _, err := tiered.Call(ctx, hot); return err }},
		{"cachier (memstore)", false, "the memory hit", func(ctx context.Context) error { _, err := mem.Call(ctx, hot); return err }},
		{"github.com/go-redis/cache/v9", false, "LocalCache (TinyLFU), not kept coherent", func(ctx context.Context) error {
			var v report
			err := rc.Get(ctx, "rc-tier:1", &v)
			if errors.Is(err, rediscache.ErrCacheMiss) {
				return errors.New("miss")
			}
			return err
		}},
		{"github.com/maypok86/otter/v2", false, "Get with a loader", func(ctx context.Context) error { _, err := oc.Get(ctx, hot, loader); return err }},
	}
	var subs []subject
	for _, im := range impls {
		get := im.get
		subs = append(subs, subject{op: "local hit", impl: im.name, base: im.base, note: im.note, run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := get(ctx); err != nil {
					must(b, "get", err)
				}
			}
		}})
	}
	return subs
}
