package cachier

import (
	"fmt"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
)

// The refresh points of entries written together fall inside the window and spread
// over it, and every process draws the same point for the same entry.
func TestRefreshPointSpreads(t *testing.T) {
	const (
		limit  = 10 * time.Minute
		window = 2 * time.Minute
		n      = 1000
	)
	at := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	var buckets [10]int
	for i := range n {
		k := store.Key{Namespace: "ns", ID: fmt.Sprint("key", i)}
		p := refreshPoint(k, at, limit, window)
		if p <= limit-window || p > limit {
			t.Fatalf("point %v outside (%v, %v]", p, limit-window, limit)
		}
		if p != refreshPoint(k, at, limit, window) {
			t.Fatal("the point is not deterministic")
		}
		buckets[int((limit-p)*10/window)]++
	}
	for i, c := range buckets {
		if c < n/10/2 { // a uniform draw puts about 100 in each tenth
			t.Fatalf("tenth %d of the window holds %d of %d points: not spread (%v)", i, c, n, buckets)
		}
	}
	// A window wider than the limit is cut to it.
	if p := refreshPoint(store.Key{ID: "x"}, at, time.Minute, time.Hour); p < 0 || p > time.Minute {
		t.Fatalf("point %v outside [0, 1m]", p)
	}
}

func TestBackoffDoublesAndResets(t *testing.T) {
	var b backoffs
	s := &settings{}
	now := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	fail := fmt.Errorf("down")
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := b.done("k", now, fail, s); got != want {
			t.Fatalf("failure %d: delay %v, want %v", i+1, got, want)
		}
	}
	if b.allow("k", now.Add(4*time.Second-1)) || !b.allow("k", now.Add(4*time.Second)) || !b.allow("other", now) {
		t.Fatal("allow does not follow the delay")
	}
	b.done("k", now, nil, s)
	if !b.allow("k", now) || b.n.Load() != 0 {
		t.Fatal("a success did not reset the backoff")
	}
	for range 30 {
		b.done("k", now, fail, s)
	}
	if got := b.done("k", now, fail, s); got != defaultBackoffMax {
		t.Fatalf("delay after many failures %v, want the cap %v", got, defaultBackoffMax)
	}
}
