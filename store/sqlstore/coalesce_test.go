package sqlstore

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cachier-go/cachier/store"
)

// fakeSelects is a fetch whose calls block until the test releases them, numbered in
// the order they began.
type fakeSelects struct {
	began   atomic.Int64
	started chan int64    // the number of each SELECT that began
	release chan struct{} // one value lets one SELECT end
}

func newFakeSelects() *fakeSelects {
	return &fakeSelects{started: make(chan int64, 100), release: make(chan struct{}, 100)}
}

func (f *fakeSelects) fetch(ctx context.Context) (store.Entry, error) {
	n := f.began.Add(1)
	f.started <- n
	select {
	case <-f.release:
	case <-ctx.Done():
		return store.Entry{}, ctx.Err()
	}
	return store.Entry{Value: fmt.Appendf(nil, "%d", n)}, nil
}

// TestReadsShareOnlyLaterSelects has Gets of one key arrive while a SELECT of it is in
// flight: they all share one SELECT, which begins after they arrived, never the one in
// flight (whose row may predate them).
func TestReadsShareOnlyLaterSelects(t *testing.T) {
	var r reads
	f := newFakeSelects()
	ctx := context.Background()
	k := store.Key{Namespace: "ns", ID: "k"}
	first := make(chan string, 1)
	go func() {
		e, err := r.get(ctx, k, f.fetch)
		if err != nil {
			t.Error(err)
		}
		first <- string(e.Value)
	}()
	if n := <-f.started; n != 1 {
		t.Fatalf("first SELECT is #%d", n)
	}
	// SELECT #1 is in flight: these Gets arrive now.
	const joiners = 10
	var wg sync.WaitGroup
	got := make([]string, joiners)
	for i := range joiners {
		wg.Go(func() {
			e, err := r.get(ctx, k, f.fetch)
			if err != nil {
				t.Error(err)
			}
			got[i] = string(e.Value)
		})
	}
	// Wait until every joiner has joined the next SELECT (it cannot begin yet).
	waitJoined(&r.coalescer, k, joiners-1)
	f.release <- struct{}{}
	if v := <-first; v != "1" {
		t.Errorf("first Get = %q, want SELECT #1", v)
	}
	if n := <-f.started; n != 2 {
		t.Fatalf("second SELECT is #%d", n)
	}
	f.release <- struct{}{}
	wg.Wait()
	for i, v := range got {
		if v != "2" {
			t.Errorf("joiner %d got %q; want SELECT #2, the one that began after it arrived", i, v)
		}
	}
	if n := f.began.Load(); n != 2 {
		t.Errorf("%d SELECTs for 11 Gets; want 2", n)
	}
}

// waitJoined waits until n Gets besides its leader have joined the SELECT of k that
// follows the one in flight.
func waitJoined[K comparable, V any](r *coalescer[K, V], k K, n int) {
	for {
		r.mu.Lock()
		cur := r.m[k]
		joined := cur != nil && cur.next != nil && cur.next.joined == n
		r.mu.Unlock()
		if joined {
			return
		}
		runtime.Gosched()
	}
}

// TestReadsCancelledLeader checks that the Gets sharing a SELECT still get its result
// when the Get that was to begin it gives up, and that a Get's result is its own copy.
func TestReadsCancelledLeader(t *testing.T) {
	var r reads
	f := newFakeSelects()
	k := store.Key{Namespace: "ns", ID: "k"}
	go func() { _, _ = r.get(context.Background(), k, f.fetch) }()
	<-f.started
	cctx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan error, 1)
	go func() { _, err := r.get(cctx, k, f.fetch); leaderDone <- err }()
	waitJoined(&r.coalescer, k, 0) // the Get to be cancelled leads the next SELECT
	res := make(chan store.Entry, 2)
	for range 2 {
		go func() {
			e, err := r.get(context.Background(), k, f.fetch)
			if err != nil {
				t.Error(err)
			}
			res <- e
		}()
	}
	waitJoined(&r.coalescer, k, 2)
	cancel()
	if err := <-leaderDone; err != context.Canceled {
		t.Errorf("cancelled Get: %v", err)
	}
	f.release <- struct{}{} // SELECT #1 ends; #2 begins for the joiners
	<-f.started
	f.release <- struct{}{}
	a, b := <-res, <-res
	if string(a.Value) != "2" || string(b.Value) != "2" {
		t.Fatalf("joiners got %q and %q; want SELECT #2", a.Value, b.Value)
	}
	a.Value[0] = 'x'
	if string(b.Value) != "2" {
		t.Error("two Gets share one value slice")
	}
}

// TestClaimsShareButNeverCreate has GetOrCreates of one key arrive while one is in
// flight (which creates nothing: the lease is another's): they share the next, which
// creates the record of its leader only. The others must learn that the record is
// there, not that they created it, or each would take the lease and compute.
func TestClaimsShareButNeverCreate(t *testing.T) {
	var s Store
	ck := claimKey{k: store.Key{Namespace: "n", ID: "k"}, rk: store.Key{Namespace: store.InternalPrefix + "n", ID: "k"}}
	inFlight, release := make(chan struct{}), make(chan struct{})
	go func() {
		_, _ = s.sharedClaim(context.Background(), ck, func(context.Context) (store.GetAndCreateResult, error) {
			close(inFlight)
			<-release
			return store.GetAndCreateResult{Cur: []byte("another's lease")}, nil
		})
	}()
	<-inFlight
	const n = 5
	var created atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r, err := s.sharedClaim(context.Background(), ck, func(context.Context) (store.GetAndCreateResult, error) {
				return store.GetAndCreateResult{Created: true, Cur: []byte("the leader's lease")}, nil
			})
			if err != nil {
				t.Error(err)
			}
			if r.Created {
				created.Add(1)
			}
		})
	}
	waitJoined(&s.claims, ck, n-1)
	close(release)
	wg.Wait()
	if c := created.Load(); c != 1 {
		t.Errorf("%d of %d GetOrCreates sharing one call report that they created the record; want 1", c, n)
	}
}
