package cachier_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store/memstore"
)

// ExpireAfter keeps a result for a fixed time, with no staleness at all: past it the
// entry is gone, on every store.
func ExampleExpireAfter() {
	clk := clock.NewFake(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
	f, err := cachier.Wrap(distance, cachier.WithStore(memstore.New(nil)), cachier.WithClock(clk),
		cachier.ExpireAfter(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	f.Call(ctx, Point{1, 2})
	clk.Advance(59 * time.Minute)
	f.Call(ctx, Point{1, 2}) // still kept
	clk.Advance(time.Minute)
	f.Call(ctx, Point{1, 2}) // expired: computed again
	fmt.Println("expired:", f.Stats().Expired)
	// Output:
	// computing {1 2}
	// computing {1 2}
	// expired: 1
}

// MaxStale bounds NextTime: a result a little stale is served at once while it is
// refreshed in the background, but one stale for longer than MaxStale is not served.
func ExampleMaxStale() {
	clk := clock.NewFake(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
	f, err := cachier.Wrap(distance, cachier.WithStore(memstore.New(nil)), cachier.WithClock(clk),
		cachier.StaleAfter(time.Minute), cachier.NextTime(true), cachier.MaxStale(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	f.Call(ctx, Point{2, 2})
	clk.Advance(2 * time.Hour) // stale for longer than an hour
	d, _ := f.Call(ctx, Point{2, 2})
	st := f.Stats()
	fmt.Println(d, "stale hits:", st.StaleHits, "expired:", st.Expired)
	// Output:
	// computing {2 2}
	// computing {2 2}
	// 8 stale hits: 0 expired: 1
}
