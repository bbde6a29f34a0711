package cachierprom_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/cachier-go/cachier"
	cachierprom "github.com/cachier-go/cachier/contrib/prometheus"
	"github.com/cachier-go/cachier/store/memstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func double(_ context.Context, n int) (int, error) { return 2 * n, nil }

func ExampleNewCollector() {
	f, err := cachier.Wrap(double, cachier.WithStore(memstore.New(nil)))
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(cachierprom.NewCollector(f))

	f.Call(context.Background(), 21)
	f.Call(context.Background(), 21)

	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP cachier_cache_hits_total Fresh results served from the store.
# TYPE cachier_cache_hits_total counter
cachier_cache_hits_total{function="github.com/cachier-go/cachier/contrib/prometheus_test.double"} 1
`), "cachier_cache_hits_total")
	fmt.Println(err)
	// Output: <nil>
}
