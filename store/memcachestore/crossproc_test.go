package memcachestore

import (
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
)

func TestStampedeAcrossProcesses(t *testing.T) {
	proctest.Stampede(t, "memcache://"+testserver.Memcached(t).Addr, 4, 16)
}

func TestKilledHolderIsTakenOver(t *testing.T) {
	proctest.KillTakeover(t, "memcache://"+testserver.Memcached(t).Addr)
}

func TestOutage(t *testing.T) {
	for _, meta := range []bool{false, true} {
		t.Run(map[bool]string{false: "gomemcache", true: "pipelined"}[meta], func(t *testing.T) {
			srv := testserver.Dedicated(t, testserver.KindMemcached)
			c := memcache.New(srv.Addr)
			c.Timeout = time.Second
			var opts Options
			if meta {
				opts.Addr = srv.Addr
			}
			st, err := New(c, &opts)
			if err != nil {
				t.Fatal(err)
			}
			proctest.Outage(t, st, func() { srv.Stop(t) }, func() { srv.Start(t) })
		})
	}
}

func TestInvalidationThroughCachier(t *testing.T) {
	addr := testserver.Memcached(t).Addr
	proctest.TagAcrossProcesses(t, "memcache://"+addr)
	st, err := New(memcache.New(addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	proctest.Invalidation(t, st)
}

// The function-level behaviour with the local tier on, in one process and across
// processes (memcached does not notify: the other process polls).
func TestLocalTierMatrix(t *testing.T) {
	proctest.LocalTierMatrix(t, "memcache://"+testserver.Memcached(t).Addr, 200*time.Millisecond)
}
