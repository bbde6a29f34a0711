package bench

import (
	"context"
	"testing"
	"time"

	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// sturdyRedis is sturdyc's DistributedStorage over Redis, the small adapter a sturdyc
// user writes (sturdyc ships none): GET, SET, MGET and a pipeline of SETs, under a
// prefix and with a TTL. The interface has no errors: a failed read is a miss, a
// failed write is dropped, as sturdyc expects.
type sturdyRedis struct {
	c      *redis.Client
	prefix string
	ttl    time.Duration
}

func (s sturdyRedis) Get(ctx context.Context, key string) ([]byte, bool) {
	b, err := s.c.Get(ctx, s.prefix+key).Bytes()
	return b, err == nil
}

func (s sturdyRedis) Set(ctx context.Context, key string, value []byte) {
	s.c.Set(ctx, s.prefix+key, value, s.ttl)
}

func (s sturdyRedis) GetBatch(ctx context.Context, keys []string) map[string][]byte {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.prefix + k
	}
	vs, err := s.c.MGet(ctx, full...).Result()
	out := make(map[string][]byte, len(keys))
	if err != nil {
		return out
	}
	for i, v := range vs {
		if str, ok := v.(string); ok {
			out[keys[i]] = []byte(str)
		}
	}
	return out
}

func (s sturdyRedis) SetBatch(ctx context.Context, records map[string][]byte) {
	p := s.c.Pipeline()
	for k, v := range records {
		p.Set(ctx, s.prefix+k, v, s.ttl)
	}
	p.Exec(ctx)
}

// rueidisClient returns a rueidis client of the shared throwaway redis-server, with
// client-side caching on (RESP3 and CLIENT TRACKING, rueidis's default).
func rueidisClient(t testing.TB, url string) rueidis.Client {
	t.Helper()
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// redisURL returns the URL of the shared throwaway redis-server.
func redisURL(t testing.TB) string { return testserver.Redis(t).URL }
