// Command quickstart memoizes a slow function on the default file store. Run it
// twice: the first run computes (about two seconds), the second answers from the
// cache in the user's cache directory, even though it is a new process.
//
//	go run ./examples/quickstart && go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/cachier-go/cachier"
)

// Query is the argument: several arguments go in one struct.
type Query struct {
	City string
	Year int
}

// Report is the result, stored as CBOR.
type Report struct {
	City       string
	Year       int
	ComputedAt time.Time
	ComputedBy int // process id
}

// slowReport stands for an expensive call: an HTTP API, a query, a model.
func slowReport(ctx context.Context, q Query) (Report, error) {
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
	return Report{City: q.City, Year: q.Year, ComputedAt: time.Now(), ComputedBy: os.Getpid()}, nil
}

func main() {
	report, err := cachier.Wrap(slowReport, cachier.StaleAfter(24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	r, err := report.Call(context.Background(), Query{City: "Lisbon", Year: 2026})
	if err != nil {
		log.Fatal(err)
	}
	how := "computed now"
	if report.Stats().Hits == 1 {
		how = "answered from the cache"
	}
	dir, _ := report.CacheDir()
	fmt.Printf("%s %d: computed at %s by process %d\n", r.City, r.Year, r.ComputedAt.Format(time.TimeOnly), r.ComputedBy)
	fmt.Printf("%s in %v (this is process %d; cache in %s)\n", how, time.Since(start).Round(time.Microsecond), os.Getpid(), dir)
}
