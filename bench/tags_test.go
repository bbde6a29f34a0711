package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/redisstore"
	gocache "github.com/eko/gocache/lib/v4/cache"
	gocachestore "github.com/eko/gocache/lib/v4/store"
	gocacheredis "github.com/eko/gocache/store/redis/v4"
)

// tagEntries is how many entries carry the tag that the invalidation subjects drop.
const tagEntries = 1000

// tagsSubjects compares tags on Redis: cachier's (a version counter per tag, checked on
// every hit, bumped by an invalidation) with eko/gocache's (a set of keys per tag,
// deleted key by key by an invalidation).
func tagsSubjects(t *testing.T) []subject {
	ctx := context.Background()
	c := redisClient(t)
	st, err := redisstore.New(c, &redisstore.Options{Prefix: "benchtags"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tag := "bench-tag-" + randHex(4)
	f, err := cachier.Wrap(makePayload, cachier.Name("bench/tags"), cachier.WithStore(st), cachier.Tags(tag))
	if err != nil {
		t.Fatal(err)
	}
	for i := range tagEntries {
		if err := f.Precache(ctx, fmt.Sprint(i), payload); err != nil {
			t.Fatal(err)
		}
	}
	gs := gocacheredis.NewRedis(c)
	gc := gocache.New[string](gs)
	sval := string(payload)
	gcKey := func(i int) string { return fmt.Sprintf("gctag:%s:%d", tag, i) }
	// populate stores the tagged entries of gocache in one pipeline, in gocache's own
	// layout (the value, and the key in the tag's set), so that only the invalidation
	// is timed.
	populate := func() error {
		p := c.Pipeline()
		for i := range tagEntries {
			p.Set(ctx, gcKey(i), sval, time.Hour)
			p.SAdd(ctx, fmt.Sprintf(gocacheredis.RedisTagPattern, tag), gcKey(i))
		}
		_, err := p.Exec(ctx)
		return err
	}
	if err := populate(); err != nil {
		t.Fatal(err)
	}
	if err := gc.Set(ctx, "gctag:hot", sval, gocachestore.WithTags([]string{tag + "-hot"}), gocachestore.WithExpiration(time.Hour)); err != nil {
		t.Fatal(err)
	}
	inv := fmt.Sprintf("invalidate a tag on %d entries", tagEntries)
	addNote(fmt.Sprintf("tags: on Redis. cachier checks the entry's tag versions on every hit and invalidates by bumping one counter (O(1)); eko/gocache reads nothing more on a hit and invalidates by deleting every key of the tag (O(n)); its %d entries are stored again, untimed, before each invalidation.", tagEntries))
	return []subject{
		{op: "hit, tagged entry", impl: "cachier (redisstore)", base: true, run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Call(ctx, "1"); err != nil {
					must(b, "call", err)
				}
			}
		}},
		{op: "hit, tagged entry", impl: "github.com/eko/gocache/lib/v4", note: "v4.2.0, redis store", run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := gc.Get(ctx, "gctag:hot"); err != nil {
					must(b, "get", err)
				}
			}
		}},
		{op: inv, impl: "cachier (redisstore)", base: true, run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				must(b, "invalidate", cachier.InvalidateTags(ctx, st, tag))
			}
		}},
		{op: inv, impl: "github.com/eko/gocache/lib/v4", note: "v4.2.0, redis store", run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				must(b, "populate", populate())
				b.StartTimer()
				must(b, "invalidate", gc.Invalidate(ctx, gocachestore.WithInvalidateTags([]string{tag})))
			}
			if _, err := gc.Get(ctx, gcKey(0)); !errors.Is(err, gocachestore.NotFound{}) {
				must(b, "invalidate", errors.New("entry survived"))
			}
		}},
	}
}
