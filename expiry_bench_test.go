package cachier_test

import (
	"context"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

// BenchmarkMemoryHitExpiring is BenchmarkMemoryHit for a function whose entries
// expire (StaleAfter, and NextTime with MaxStale and RefreshAhead): the cost of the
// expiry and refresh-ahead checks on the hit path.
func BenchmarkMemoryHitExpiring(b *testing.B) {
	f, err := cachier.Wrap(benchFn, cachier.WithStore(memstore.New(nil)),
		cachier.StaleAfter(time.Hour), cachier.NextTime(true), cachier.MaxStale(time.Hour), cachier.RefreshAhead(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	f.Call(ctx, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Call(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
}
