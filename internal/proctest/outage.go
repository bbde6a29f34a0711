package proctest

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// Outage checks what a caller sees while the server behind st is down: every call
// still returns the function's result, store errors are counted, and once the
// server is back, caching resumes on the same store without a restart. stop and
// start stop and restart the server.
func Outage(t *testing.T, d store.Driver, stop, start func()) {
	t.Helper()
	st := store.Adapt(d)
	var computed atomic.Int64
	fn := func(_ context.Context, x int) (int, error) { computed.Add(1); return x * 3, nil }
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil)) // the errors are expected; Stats counts them
	f, err := cachier.Wrap(fn, cachier.Name("proctest/outage/"+randHex()), cachier.WithStore(st),
		cachier.StoreTimeout(2*time.Second), cachier.LeaseTTL(time.Second), cachier.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mustCall := func(x int) {
		t.Helper()
		v, err := f.Call(ctx, x)
		if err != nil || v != x*3 {
			t.Fatalf("Call(%d) = %d, %v; want %d", x, v, err, x*3)
		}
	}
	mustCall(1)
	mustCall(1)
	if f.Stats().Hits != 1 {
		t.Fatalf("no hit before the outage: %+v", f.Stats())
	}
	stop()
	for x := range 3 {
		mustCall(10 + x)
	}
	if f.Stats().StoreErrors == 0 {
		t.Fatalf("the outage went unnoticed: %+v", f.Stats())
	}
	start()
	// The client reconnects on its own; poll until a stored result is served again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mustCall(100)
		before := f.Stats().Hits
		mustCall(100)
		if f.Stats().Hits > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("caching did not resume after the server came back: %+v", f.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
