package redisstore

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
)

func TestStampedeAcrossProcesses(t *testing.T) {
	proctest.Stampede(t, testserver.Redis(t).URL, 4, 16)
}

func TestStampedeAcrossProcessesOnCluster(t *testing.T) {
	proctest.Stampede(t, "redis+cluster://"+strings.Join(testserver.RedisCluster(t).Addrs, ","), 4, 16)
}

func TestKilledHolderIsTakenOver(t *testing.T) {
	proctest.KillTakeover(t, testserver.Redis(t).URL)
}

func TestOutageThroughCachier(t *testing.T) {
	srv := testserver.Dedicated(t, testserver.KindRedis)
	opts, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	st, err := New(client, nil)
	if err != nil {
		t.Fatal(err)
	}
	proctest.Outage(t, st, func() { srv.Stop(t) }, func() { srv.Start(t) })
}

func TestInvalidationThroughCachier(t *testing.T) {
	for name, url := range map[string]string{
		"single":  testserver.Redis(t).URL,
		"cluster": "redis+cluster://" + strings.Join(testserver.RedisCluster(t).Addrs, ","),
	} {
		t.Run(name, func(t *testing.T) { proctest.TagAcrossProcesses(t, url) })
	}
	client := redis.NewClient(&redis.Options{Addr: testserver.Redis(t).Addr})
	t.Cleanup(func() { client.Close() })
	st, err := New(client, nil)
	if err != nil {
		t.Fatal(err)
	}
	proctest.Invalidation(t, st)
}

func TestRefreshOnceAcrossProcesses(t *testing.T) {
	proctest.RefreshOnce(t, testserver.Redis(t).URL, 4, 16)
}
