package redisstore

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store/storetest"
)

// Overlapping batches from 4 processes compute each key exactly once, on one server
// and on a cluster (where the batched reads are pipelines split by slot).
func TestBatchStampedeAcrossProcesses(t *testing.T) {
	t.Run("single", func(t *testing.T) { proctest.BatchStampede(t, testserver.Redis(t).URL, 4) })
	t.Run("cluster", func(t *testing.T) {
		proctest.BatchStampede(t, "redis+cluster://"+strings.Join(testserver.RedisCluster(t).Addrs, ","), 4)
	})
}

func TestBatcher(t *testing.T) {
	for name, c := range map[string]redis.UniversalClient{
		"single":  singleClient(t),
		"cluster": clusterClient(t),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := New(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			storetest.RunBatchTests(t, s)
		})
	}
}

// boxStrings gives interfaces that are the very strings, to type switches, ==, fmt
// and the garbage collector alike, and costs no allocation per string.
func TestBatchBoxStrings(t *testing.T) {
	ss := []string{"a", "", strings.Repeat("k", 100), "{ns:id}:v"}
	dst := make([]any, len(ss))
	boxStrings(dst, ss)
	for i, v := range dst {
		s, ok := v.(*string)
		if !ok || s != &ss[i] || *s != ss[i] {
			t.Errorf("dst[%d] = %#v, want %q", i, v, ss[i])
		}
	}
	if n := testing.AllocsPerRun(100, func() { boxStrings(dst, ss) }); n != 0 {
		t.Errorf("boxStrings: %v allocations, want 0", n)
	}
}
