package bench

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	rediscache "github.com/go-redis/cache/v9"
	"github.com/maypok86/otter/v2"
	"github.com/redis/rueidis"
	"github.com/viccon/sturdyc"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
	"github.com/cachier-go/cachier/store/redisstore"
)

// localTierSubjects: a hit of cachier's local tier in front of Redis beside a memory
// hit and the peers' local copies in front of Redis (issue 13): go-redis/cache's
// LocalCache, sturdyc's memory in front of its distributed storage, and rueidis's
// client-side caching (DoCache, kept coherent by Redis's CLIENT TRACKING).
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
	sc := sturdyc.New[report](10_000, 16, time.Hour, 10,
		sturdyc.WithDistributedStorage(sturdyRedis{c: c, prefix: "sturdyc-tier:", ttl: time.Hour}))
	const hot = 1
	sturdyGet := func(ctx context.Context) (report, error) {
		return sc.GetOrFetch(ctx, "1", func(ctx context.Context) (report, error) { return makeReport(ctx, hot) })
	}
	rue := rueidisClient(t, redisURL(t))
	// A command is recycled once done: built per call, as rueidis's users write it.
	rueGet := func() rueidis.Cacheable { return rue.B().Get().Key("rueidis-tier:1").Cache() }
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
	if _, err := sturdyGet(ctx); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := rue.Do(ctx, rue.B().Set().Key("rueidis-tier:1").Value(rueidis.BinaryString(js)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	// rueidis's first DoCache reads Redis and keeps the reply; a hit is answered
	// from that copy until Redis says the key changed.
	for i := 0; !rue.DoCache(ctx, rueGet(), time.Hour).IsCacheHit(); i++ {
		if i == 100 {
			t.Fatal("rueidis: no client-side cache hit after 100 DoCache calls")
		}
	}
	rueHit := func(ctx context.Context) (rueidis.RedisResult, error) {
		res := rue.DoCache(ctx, rueGet(), time.Hour)
		if err := res.Error(); err != nil {
			return res, err
		}
		if !res.IsCacheHit() {
			return res, errors.New("not a client-side cache hit")
		}
		return res, nil
	}
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
		{"github.com/viccon/sturdyc", false, "GetOrFetch, WithDistributedStorage over Redis: hits from its memory, not kept coherent", func(ctx context.Context) error { _, err := sturdyGet(ctx); return err }},
		{"github.com/redis/rueidis", false, "DoCache (client-side caching, CLIENT TRACKING), JSON decoded per hit", func(ctx context.Context) error {
			res, err := rueHit(ctx)
			if err != nil {
				return err
			}
			var v report
			return res.DecodeJSON(&v)
		}},
		{"github.com/redis/rueidis", false, "DoCache, the cached string only (no decoding)", func(ctx context.Context) error {
			res, err := rueHit(ctx)
			if err != nil {
				return err
			}
			_, err = res.ToString()
			return err
		}},
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
