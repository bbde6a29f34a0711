package filestore_test

import (
	"context"
	"testing"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
	"github.com/cachier-go/cachier/store/storetest"
)

// harness gives each conformance test a store in a fresh temporary directory.
type harness struct{}

func (harness) MakeStore(_ context.Context, t *testing.T) (store.Driver, error) {
	return filestore.New(&filestore.Options{Dir: t.TempDir()})
}

func (harness) Close() {}

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return harness{} }, storetest.Capabilities{})
}

func BenchmarkStore(b *testing.B) {
	s, err := filestore.New(&filestore.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	storetest.RunBenchmarks(b, s)
}
