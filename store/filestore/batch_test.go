package filestore

import (
	"testing"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// The file store has no native batch: store.GetMany and SetMany read and write its
// files concurrently.
func TestBatchFallback(t *testing.T) {
	s, err := New(&Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	storetest.RunBatchTests(t, store.Adapt(s))
}
