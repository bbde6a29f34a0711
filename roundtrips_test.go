package cachier_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/redisstore"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgxpipe"
)

// A miss costs two store round trips on a store that claims natively (issue #11):
// the first read, which takes the lease as it finds no entry
// (store.Claimer.ReadOrClaim), and the write that releases it
// (store.MissPath.WriteAndRelease). A hit costs one. Round trips are counted where
// they leave the process: go-redis's command hook, pgx's query tracer.

// rttHook counts the round trips of a go-redis client: a command, or a pipeline.
type rttHook struct {
	n atomic.Int64
	// after, if set, runs after each command with the caller's context.
	after func(ctx context.Context, cmd redis.Cmder)
}

func (h *rttHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *rttHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		err := next(ctx, cmd)
		if h.after != nil {
			h.after(ctx, cmd)
		}
		return err
	}
}

func (h *rttHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// redisStore returns a driver on the test Redis server, its records under prefix,
// and its client, with hook (if not nil) counting or watching what the client sends.
// Both are closed when tb ends.
func redisStore(tb testing.TB, prefix string, hook redis.Hook) (store.Driver, *redis.Client) {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: testserver.Redis(tb).Addr})
	tb.Cleanup(func() { c.Close() })
	if hook != nil {
		c.AddHook(hook)
	}
	st, err := redisstore.New(c, &redisstore.Options{Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st, c
}

// pgCounter counts the statements and the batches pgx sends (each one round trip).
type pgCounter struct{ n atomic.Int64 }

func (c *pgCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *pgCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *pgCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *pgCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (c *pgCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// wantRoundTrips checks that a miss of a fresh key costs two round trips and a hit
// one, as count tells them.
func wantRoundTrips(t *testing.T, st store.Driver, count *atomic.Int64, miss int) {
	t.Helper()
	ctx := t.Context()
	calls := 0
	f, err := cachier.Wrap(func(_ context.Context, n int) (string, error) {
		calls++
		return fmt.Sprint("result ", n), nil
	}, cachier.Name(fmt.Sprintf("rtt/%s/%d", t.Name(), time.Now().UnixNano())), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Call(ctx, 0); err != nil { // the table, the scripts, the prepared statements
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		count.Store(0)
		if _, err := f.Call(ctx, i); err != nil {
			t.Fatal(err)
		}
		if n := count.Load(); n != int64(miss) {
			t.Errorf("miss %d: %d round trips, want %d", i, n, miss)
		}
		count.Store(0)
		if v, err := f.Call(ctx, i); err != nil || v != fmt.Sprint("result ", i) {
			t.Fatalf("hit %d: %q, %v", i, v, err)
		}
		if n := count.Load(); n != 1 {
			t.Errorf("hit %d: %d round trips, want 1", i, n)
		}
	}
	if calls != 4 {
		t.Errorf("fn ran %d times for 4 keys", calls)
	}
	if s := f.Stats(); s.Misses != 4 || s.Hits != 3 {
		t.Errorf("Stats: %d misses, %d hits; want 4, 3", s.Misses, s.Hits)
	}
}

func TestMissRoundTripsRedis(t *testing.T) {
	h := &rttHook{}
	st, _ := redisStore(t, "rtt", h)
	wantRoundTrips(t, st, &h.n, 2) // the read that takes the lease, the write that releases it
}

func TestMissRoundTripsPostgres(t *testing.T) {
	cfg, err := pgx.ParseConfig(testserver.Postgres(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	pc := &pgCounter{}
	cfg.Tracer = pc
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { db.Close() })
	st, err := sqlstore.New(db, &sqlstore.Options{Table: "rtt_entries", Pipeline: pgxpipe.Pipeliner{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The first read is two statements in one batch (the lease's conditional insert,
	// then the reads: sqlstore's GetOrCreate says why), then the write.
	wantRoundTrips(t, st, &pc.n, 2)
}

// callerKey marks the context of one caller, for the hook to tell callers apart.
type callerKey struct{}

// TestFollowerReleasesLookupLease: caller A's first read takes the lease; before A
// joins this process's flight, caller B's first read finds the lease held, B leads
// the flight and waits for the lease. A then joins B's run as a follower: it must
// give its lease up at once, or B waits until the lease runs out (and takes it over).
func TestFollowerReleasesLookupLease(t *testing.T) {
	var (
		aClaimed  = make(chan struct{})
		aResume   = make(chan struct{})
		bWaiting  = make(chan struct{})
		aOnce     sync.Once
		bOnce     sync.Once
		bCommands atomic.Int32
	)
	h := &rttHook{after: func(ctx context.Context, cmd redis.Cmder) {
		if cmd.Name() != "evalsha" {
			return
		}
		switch ctx.Value(callerKey{}) {
		case "A": // A's first read: it took the lease
			aOnce.Do(func() {
				close(aClaimed)
				<-aResume
			})
		case "B": // B's first read found the lease held; the second is its wait's
			if bCommands.Add(1) == 2 {
				bOnce.Do(func() { close(bWaiting) })
			}
		}
	}}
	st, _ := redisStore(t, "follower", h)
	var calls atomic.Int32
	f, err := cachier.Wrap(func(_ context.Context, n int) (int, error) {
		calls.Add(1)
		return n * 2, nil
	}, cachier.Name(fmt.Sprintf("follower/%d", time.Now().UnixNano())), cachier.WithStore(st),
		cachier.LeaseTTL(30*time.Second)) // far longer than the test: only a release frees it
	if err != nil {
		t.Fatal(err)
	}
	// The scripts are loaded, so each call below is EVALSHA only.
	if _, err := f.Call(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]int, 2)
	for i, who := range []string{"A", "B"} {
		if who == "B" {
			<-aClaimed
		}
		wg.Go(func() {
			v, err := f.Call(context.WithValue(t.Context(), callerKey{}, who), 21)
			if err != nil {
				t.Errorf("caller %s: %v", who, err)
			}
			results[i] = v
		})
	}
	<-bWaiting
	close(aResume)
	wg.Wait()
	if results[0] != 42 || results[1] != 42 {
		t.Errorf("results %v, want [42 42]", results)
	}
	s := f.Stats()
	if n := calls.Load(); n != 2 { // key 0, then key 21 once
		t.Errorf("fn ran %d times, want 2", n)
	}
	if s.LeaseTakeovers != 0 {
		t.Errorf("%d lease takeovers: the leader waited for the follower's lease to run out", s.LeaseTakeovers)
	}
}
