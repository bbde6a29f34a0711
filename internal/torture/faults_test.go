package torture

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/faultproxy"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/redisstore"
)

// TestNetworkFaults puts a TCP proxy between cachier and each server and injects
// latency (below and above StoreTimeout), connection resets and a black hole, with
// several goroutines calling on a few keys. Every call returns fn's result within a
// generous bound (LeaseTTL + 8 x StoreTimeout + fn time + 2s slack; the worst call is
// logged per fault), and once the fault is removed the store serves hits again.
//
// In -short mode only Redis and PostgreSQL run.
//
// Redis runs through a go-redis client built with ContextTimeoutEnabled, which makes
// it honour StoreTimeout. KNOWN BUG (issue 7): the client store.Open builds does not
// set it, so go-redis ignores the context's deadline for socket reads and a
// black-holed Redis holds each operation for ReadTimeout (3s) and its retries; that
// case runs only with -torture.known-bugs until redisstore sets it.
func TestNetworkFaults(t *testing.T) {
	// The drivers' own logs of the resets are expected noise.
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	redis.SetLogger(quietRedis{})
	for _, tg := range targets {
		switch {
		case tg.kind == "", tg.kind == testserver.KindRedisCluster:
			continue // no network; a cluster redirects clients to the nodes' real addresses
		case testing.Short() && tg.kind != testserver.KindRedis && tg.kind != testserver.KindPostgres:
			continue
		}
		t.Run(tg.name, func(t *testing.T) {
			srv := sharedServer(t, tg.kind)
			p, err := faultproxy.New(srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			via := &testserver.Server{Name: srv.Name, Addr: p.Addr(), Addrs: []string{p.Addr()},
				URL: strings.ReplaceAll(srv.URL, srv.Addr, p.Addr()), AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
			u := tg.url(t, via)
			if tg.kind != testserver.KindRedis {
				networkFaults(t, u, nil, p)
				return
			}
			rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), ContextTimeoutEnabled: true})
			defer rdb.Close()
			st, err := redisstore.New(rdb, &redisstore.Options{Prefix: "faults-" + randHex()})
			if err != nil {
				t.Fatal(err)
			}
			networkFaults(t, "", store.Adapt(st), p)
			if *flagKnownBugs {
				t.Run("store.Open", func(t *testing.T) { networkFaults(t, u, nil, p) })
			}
		})
	}
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// networkFaults runs the fault phases on st, or on the store at u if st is nil.
func networkFaults(t *testing.T, u string, st store.Store, p *faultproxy.Proxy) {
	const (
		storeTimeout = 300 * time.Millisecond
		leaseTTL     = time.Second
		fnTime       = 10 * time.Millisecond
		goroutines   = 4
	)
	bound := leaseTTL + 8*storeTimeout + fnTime + 2*time.Second
	ctx := context.Background()
	if st == nil {
		var err error
		if st, err = store.Open(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	defer st.Close()
	var computed atomic.Int64
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil)) // expected errors; Stats counts them
	f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) {
		computed.Add(1)
		time.Sleep(fnTime)
		return x * 3, nil
	}, cachier.Name("faults/"+randHex()), cachier.WithStore(st), cachier.StoreTimeout(storeTimeout),
		cachier.LeaseTTL(leaseTTL), cachier.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}

	// calls runs goroutines x n calls over keys base..base+2 and returns the worst time.
	calls := func(phase string, base, n int) time.Duration {
		t.Helper()
		var (
			mu    sync.Mutex
			worst time.Duration
			wg    sync.WaitGroup
		)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					x := base + (g+i)%3
					start := time.Now()
					v, err := f.Call(ctx, x)
					d := time.Since(start)
					if err != nil || v != x*3 {
						t.Errorf("%s: Call(%d) = %d, %v; want %d", phase, x, v, err, x*3)
					}
					mu.Lock()
					worst = max(worst, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		// Wall time is reported, never asserted: a busy machine stretches it. What
		// bounds a call is asserted below, by its cause: store operations that time
		// out (StoreErrors grows) instead of waiting out the fault.
		return worst
	}
	hit := func() bool {
		before := f.Stats().Hits
		calls("probe", 0, 1)
		return f.Stats().Hits > before
	}
	recovered := func(phase string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !hit() {
			if time.Now().After(deadline) {
				t.Fatalf("after %s was removed, the store did not serve hits again within 30s: %+v", phase, f.Stats())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	calls("warm", 0, 2)
	if !hit() {
		t.Fatalf("no hit before any fault: %+v", f.Stats())
	}
	report := []string{}
	phases := []struct {
		name   string
		inject func()
		fails  bool // every store operation fails (times out or is reset)
	}{
		{"latency 50ms", func() { p.Latency(50 * time.Millisecond) }, false},
		{"latency 1s (> StoreTimeout)", func() { p.Latency(time.Second) }, true},
		{"connection resets", p.Reset, true},
		{"black hole", p.Blackhole, true},
	}
	for i, ph := range phases {
		errsBefore := f.Stats().StoreErrors
		ph.inject()
		worst := calls(ph.name, 10*(i+1), 3)
		if errs := f.Stats().StoreErrors - errsBefore; ph.fails && errs == 0 {
			t.Errorf("%s: no store error counted; the calls waited the fault out instead of giving up after StoreTimeout", ph.name)
		}
		p.Pass()
		start := time.Now()
		recovered(ph.name)
		report = append(report, fmt.Sprintf("%s: worst call %v, store errors %d, hits again after %v",
			ph.name, worst.Round(time.Millisecond), f.Stats().StoreErrors-errsBefore, time.Since(start).Round(time.Millisecond)))
	}

	// The bulk operations through a black hole: are they bounded too?
	p.Blackhole()
	for _, op := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"Invalidate", func(ctx context.Context) error { return f.Invalidate(ctx, 0) }},
		{"Clear", f.Clear},
		{"ClearBeingCalculated", f.ClearBeingCalculated},
	} {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		err := op.do(ctx)
		cancel()
		d := time.Since(start).Round(time.Millisecond)
		report = append(report, fmt.Sprintf("%s in a black hole: %v after %v", op.name, errText(err), d))
	}
	p.Pass()
	recovered("the last black hole")
	conns, resets := p.Stats()
	t.Logf("expected bound %v (not asserted); %d connections, %d reset; %d computations, %d store errors\n\t%s", bound, conns, resets,
		computed.Load(), f.Stats().StoreErrors, strings.Join(report, "\n\t"))
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}
