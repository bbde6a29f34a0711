package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store/redisstore"
	gocache "github.com/eko/gocache/lib/v4/cache"
	gocachestore "github.com/eko/gocache/lib/v4/store"
	gocacheredis "github.com/eko/gocache/store/redis/v4"
	rediscache "github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"
)

// redisClient returns a client of the shared throwaway redis-server.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(testserver.Redis(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func redisSubjects(t *testing.T) []subject {
	c := redisClient(t)
	st, err := redisstore.New(c, &redisstore.Options{Prefix: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rc := rediscache.New(&rediscache.Options{Redis: c}) // no LocalCache: every hit goes to Redis
	gc := gocache.New[string](gocacheredis.NewRedis(c))
	sval := string(payload)
	return storeSubjects(t, "", "redis", st,
		rawOps{impl: "raw GET / SET", note: "go-redis", set: func(ctx context.Context, k string) error {
			return c.Set(ctx, "raw:"+k, payload, time.Hour).Err()
		}, get: func(ctx context.Context, k string) (bool, error) {
			_, err := c.Get(ctx, "raw:"+k).Bytes()
			if errors.Is(err, redis.Nil) {
				return false, nil
			}
			return err == nil, err
		}},
		rawOps{impl: "github.com/go-redis/cache/v9", note: "no local cache", set: func(ctx context.Context, k string) error {
			return rc.Set(&rediscache.Item{Ctx: ctx, Key: "rc:" + k, Value: payload, TTL: time.Hour})
		}, get: func(ctx context.Context, k string) (bool, error) {
			var v []byte
			err := rc.Get(ctx, "rc:"+k, &v)
			if errors.Is(err, rediscache.ErrCacheMiss) {
				return false, nil
			}
			return err == nil, err
		}},
		rawOps{impl: "github.com/eko/gocache/lib/v4", note: "v4.2.0, redis store", set: func(ctx context.Context, k string) error {
			return gc.Set(ctx, "gc:"+k, sval, gocachestore.WithExpiration(time.Hour))
		}, get: func(ctx context.Context, k string) (bool, error) {
			_, err := gc.Get(ctx, "gc:"+k)
			if errors.Is(err, gocachestore.NotFound{}) {
				return false, nil
			}
			return err == nil, err
		}},
	)
}
