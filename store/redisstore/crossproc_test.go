package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

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

// TestLocalTierAcrossProcesses: changes reach another process's local tier through
// pub/sub, also when its pub/sub connection is killed just before each change.
func TestLocalTierAcrossProcesses(t *testing.T) {
	srv := testserver.Redis(t)
	t.Run("notified", func(t *testing.T) { proctest.LocalTierAcrossProcesses(t, srv.URL, proctest.TierChanges, nil) })
	t.Run("connection killed", func(t *testing.T) {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { client.Close() })
		proctest.LocalTierAcrossProcesses(t, srv.URL, proctest.TierChanges, func(t testing.TB) {
			// The previous round's kill may still be reconnecting (go-redis resubscribes
			// with backoff, later still on a busy machine): wait until a pub/sub
			// connection is there again, then kill it.
			deadline := time.Now().Add(time.Minute)
			for {
				n, err := client.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Result()
				if err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("no pub/sub connection to kill within a minute")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	})
}

// BenchmarkLocalTierCoherence: from a change in one process to a miss in another
// process's local tier, over pub/sub (go test -run ^$ -bench LocalTierCoherence -benchtime 200x).
func BenchmarkLocalTierCoherence(b *testing.B) {
	proctest.ReportCoherence(b, testserver.Redis(b).URL, nil)
}

// The function-level behaviour with the local tier on, in one process and across
// processes.
func TestLocalTierMatrix(t *testing.T) {
	proctest.LocalTierMatrix(t, testserver.Redis(t).URL, 0)
}
