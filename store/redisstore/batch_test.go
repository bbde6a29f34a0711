package redisstore

import (
	"strings"
	"testing"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
)

// Overlapping batches from 4 processes compute each key exactly once, on one server
// and on a cluster (where the batched reads are pipelines split by slot).
func TestBatchStampedeAcrossProcesses(t *testing.T) {
	t.Run("single", func(t *testing.T) { proctest.BatchStampede(t, testserver.Redis(t).URL, 4) })
	t.Run("cluster", func(t *testing.T) {
		proctest.BatchStampede(t, "redis+cluster://"+strings.Join(testserver.RedisCluster(t).Addrs, ","), 4)
	})
}
