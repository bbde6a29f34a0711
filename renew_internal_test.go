package cachier

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
)

// TestRenewerRenewsEachLeaseOnTime: leases held together on one renewer are each
// renewed every third of the TTL from when they were taken, a stopped one no more,
// one whose renewal says stop no more, and the timer is disarmed once none is held
// (on an injected clock).
func TestRenewerRenewsEachLeaseOnTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clk := clock.NewFake(time.Unix(1e9, 0))
	const ttl = 3 * time.Second // every second
	r := newRenewer(clk, ttl)
	var a, b, c atomic.Int64
	renewed := make(chan string, 16)
	stopA := r.start(func() bool { a.Add(1); renewed <- "a"; return true })
	clk.Advance(500 * time.Millisecond)
	stopB := r.start(func() bool { b.Add(1); renewed <- "b"; return true })
	stopC := r.start(func() bool { c.Add(1); renewed <- "c"; return false })
	defer stopC()
	step := func(d time.Duration, want ...string) {
		t.Helper()
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(d)
		got := map[string]bool{}
		for range want {
			got[<-renewed] = true
		}
		for _, w := range want {
			if !got[w] {
				t.Fatalf("after %v: renewed %v, want %v", d, got, want)
			}
		}
	}
	step(time.Second, "a", "b", "c") // t=1.5s: a due at 1s; b and c, due at 1.5s
	step(time.Second, "a", "b")      // t=2.5s: c said stop
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	stopA()
	step(time.Second, "b") // t=3.5s
	stopB()
	if n := clk.Timers(); n != 0 {
		t.Fatalf("%d timers armed with no lease held, want 0", n)
	}
	clk.Advance(10 * time.Second)
	if a.Load() != 2 || b.Load() != 3 || c.Load() != 1 {
		t.Fatalf("renewals a=%d b=%d c=%d, want 2 3 1", a.Load(), b.Load(), c.Load())
	}
}
