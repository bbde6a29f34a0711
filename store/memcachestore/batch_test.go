package memcachestore

import (
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store/storetest"
)

// GetMany reads entries and their generation counters in one GetMulti.
func TestBatcher(t *testing.T) {
	c := memcache.New(testserver.Memcached(t).Addr)
	t.Cleanup(func() { _ = c.Close() })
	s, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunBatchTests(t, s)
}
