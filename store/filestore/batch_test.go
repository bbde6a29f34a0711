package filestore

import (
	"testing"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// The file store's batches are one Get or Set per key: in the caller's goroutine for
// a few keys, concurrently for more (batch.go).
func TestBatchFallback(t *testing.T) {
	s, err := New(&Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	storetest.RunBatchTests(t, store.Adapt(s))
}
