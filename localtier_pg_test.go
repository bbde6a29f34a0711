package cachier

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/sqlstore/pgnotify"
	"github.com/cachier-go/cachier/store/sqlstore/pgxpipe"
)

// readCountingPG is a PostgreSQL sqlstore.Store (every capability of it, promoted)
// that counts its reads of the keys in watched, and holds its reads of the local
// tier's markers while hold is set, until the channel is closed.
type readCountingPG struct {
	*sqlstore.Store
	watched atomic.Pointer[map[store.Key]bool]
	reads   atomic.Int64
	hold    atomic.Pointer[chan struct{}]
}

func (p *readCountingPG) count(ks ...store.Key) {
	if w := p.watched.Load(); w != nil {
		for _, k := range ks {
			if (*w)[k] {
				p.reads.Add(1)
			}
		}
	}
}

func (p *readCountingPG) held(ks ...store.Key) {
	if g := p.hold.Load(); g != nil {
		for _, k := range ks {
			if k.Namespace == markerNS {
				<-*g
				return
			}
		}
	}
}

func (p *readCountingPG) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	p.held(k)
	p.count(k)
	return p.Store.Get(ctx, k)
}

func (p *readCountingPG) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	p.held(ks...)
	p.count(ks...)
	return p.Store.GetMany(ctx, ks)
}

func (p *readCountingPG) GetAndCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	p.count(k)
	return p.Store.GetAndCreate(ctx, k, also, rk, rec)
}

func (p *readCountingPG) GetOrCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	p.count(k)
	return p.Store.GetOrCreate(ctx, k, also, rk, rec)
}

// pgHandles opens a fresh table on the test's PostgreSQL and returns a function that
// opens one more store handle on it, as another process would (its own listening
// connection, its own pool).
func pgHandles(t *testing.T) func() *sqlstore.Store {
	t.Helper()
	url := testserver.Postgres(t).URL
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	table := "cachier_tier" + hex.EncodeToString(b) + "_entries"
	first := true
	return func() *sqlstore.Store {
		t.Helper()
		db, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		if first {
			first = false
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+table)
				db.Close()
			})
		} else {
			t.Cleanup(func() { db.Close() })
		}
		st, err := sqlstore.New(db, &sqlstore.Options{Table: table, Listener: pgnotify.Listener{}, Pipeline: pgxpipe.Pipeliner{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
}

// listened returns a function that waits until st's listening connection has
// delivered every notification of a change committed before the call: it changes a
// record of a namespace of its own and waits for that change's notification, which
// PostgreSQL delivers after those committed before it.
func listened(t *testing.T, st *sqlstore.Store) func() {
	t.Helper()
	k := store.Key{Namespace: "tier-test-barrier", ID: "b"}
	ch, stop, err := st.Watch(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return func() {
		t.Helper()
		select { // a wake-up left over from another change of it
		case <-ch:
		default:
		}
		if err := st.Set(context.Background(), k, store.Entry{Value: []byte("x"), StoredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(time.Minute): // a deadlock guard, not a timing assertion
			t.Fatal("the barrier's notification never came")
		}
	}
}

// droppedBy runs change, another writer's, and waits until ts's notifications (see
// notifiedCh) have dropped its copies: from then on, ts's namespace watch is up.
func droppedBy(t *testing.T, ts *tierSync, notified <-chan struct{}, change func()) {
	t.Helper()
	mark := ts.wmAll.Load()
	change()
	for ts.wmAll.Load() == mark {
		select {
		case <-notified:
		case <-time.After(time.Minute): // a deadlock guard, not a timing assertion
			t.Fatal("another writer's change, notified, never dropped the tier's copies")
		}
	}
}

// notifiedCh returns a channel that receives a value after each notification ts
// handled.
func notifiedCh(ts *tierSync) <-chan struct{} {
	notified := make(chan struct{}, 1024)
	ts.onNotified = func() {
		select {
		case notified <- struct{}{}:
		default:
		}
	}
	return notified
}

// On PostgreSQL every write notifies its own record, the writer's too: the writer's
// tier skips the notifications of its own writes (they carry its writer id), and
// keeps its copies after its own writes, of single calls and of batches, reading none
// of its 90 cached arguments again (issue #14 on PostgreSQL).
func TestLocalTierWriterKeepsItsCopiesPostgres(t *testing.T) {
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single=%v", single), func(t *testing.T) {
			open := pgHandles(t)
			pg := &readCountingPG{Store: open()}
			barrier := listened(t, pg.Store)
			name := fmt.Sprintf("tier/own-pg-%v", single)
			clk := clock.NewFake(time.Now()) // polling never helps: the bound is an hour
			opts := []Option{Name(name), WithStore(store.Adapt(pg)), WithClock(clk), LocalTier(10_000, 0), LocalTierBound(time.Hour)}
			bt, err := WrapBatch(tierBatchFn("a"), opts...)
			must(t, err)
			f, err := Wrap(func(_ context.Context, x int) (string, error) { return fmt.Sprintf("a%d", x), nil }, opts...)
			must(t, err)
			st := bt.Stats
			if single {
				st = f.Stats
			}
			ctx := context.Background()
			cached := make(map[store.Key]bool)
			for i := range 90 {
				k, err := bt.Key(i)
				must(t, err)
				cached[k] = true
			}
			pg.watched.Store(&cached)
			next := 1000
			// call asks for the 90 cached arguments and 10 new ones, and returns how many
			// of the cached ones the local tier answered and how many the store read.
			call := func() (local uint64, reads int64) {
				t.Helper()
				h, r := st().LocalHits, pg.reads.Load()
				args := make([]int, 0, 100)
				for i := range 90 {
					args = append(args, i)
				}
				for range 10 {
					args = append(args, next)
					next++
				}
				if single {
					for _, a := range args {
						if v := tierCall(t, f, a); v != fmt.Sprintf("a%d", a) {
							t.Fatalf("Call(%d) = %q", a, v)
						}
					}
				} else {
					m, err := bt.Call(ctx, args)
					must(t, err)
					if len(m) != 100 || m[1] != "a1" {
						t.Fatalf("batch: %d results, %q", len(m), m[1])
					}
				}
				return st().LocalHits - h, pg.reads.Load() - r
			}
			// The tier starts, and its namespace watch is up once another handle's write
			// (no local tier there: no marker move) has dropped its copies.
			ts := bt.f.local.sync
			if single {
				ts = f.local.sync
			}
			notified := notifiedCh(ts) // before the tier starts its watcher
			call()
			other, err := Wrap(func(_ context.Context, x int) (string, error) { return "b", nil }, Name(name), WithStore(store.Adapt(open())))
			must(t, err)
			droppedBy(t, ts, notified, func() { must(t, other.Precache(ctx, 95, "a95")) })
			// Until the tier serves: its first reconciles drop what came before them.
			for i := 0; ; i++ {
				if i == 100 {
					t.Fatal("the local tier never served the 90 cached arguments")
				}
				if local, _ := call(); local == 90 {
					break
				}
				barrier()
			}
			for i := range 10 {
				// Every notification of the last call's writes has reached the tier.
				barrier()
				if local, reads := call(); local != 90 || reads != 0 {
					t.Fatalf("call %d after its own writes: %d of the 90 cached arguments from the local tier, %d read from the store; want 90 and 0", i, local, reads)
				}
			}
			// The counting works: another handle's write (of the same value) drops the
			// copies, and they are read.
			droppedBy(t, ts, notified, func() { must(t, other.Precache(ctx, 5, "a5")) })
			if _, reads := call(); reads == 0 {
				t.Fatal("after another handle's write, the cached arguments were not read again")
			}
		})
	}
}

// Another writer's change of an entry the writer's tier holds still drops its copies
// at once on PostgreSQL, by the change's own notification, whether it carries no
// writer id or another one (another local tier's write, whose marker move is not
// made here: the notification alone must drop them; the tier's marker reads are held
// too).
func TestLocalTierOtherWriterDropsCopiesPostgres(t *testing.T) {
	for _, otherID := range []string{"", "another-writer"} {
		t.Run(fmt.Sprintf("id=%q", otherID), func(t *testing.T) {
			open := pgHandles(t)
			pg := &readCountingPG{Store: open()}
			barrier := listened(t, pg.Store)
			name := "tier/other-pg-" + otherID
			clk := clock.NewFake(time.Now())
			fa, err := Wrap(func(_ context.Context, x int) (string, error) { return fmt.Sprintf("a%d", x), nil },
				Name(name), WithStore(store.Adapt(pg)), WithClock(clk), LocalTier(100, 0), LocalTierBound(time.Hour))
			must(t, err)
			// No local tier: its writes move no marker, and carry the writer id of
			// their context.
			fb, err := Wrap(func(_ context.Context, x int) (string, error) { return fmt.Sprintf("b%d", x), nil },
				Name(name), WithStore(store.Adapt(open())), WithClock(clk))
			must(t, err)
			ts := fa.local.sync
			notified := notifiedCh(ts)
			ctx := context.Background()

			tierCall(t, fa, 1) // the tier starts
			// Its namespace watch is up once a write of b's has dropped its copies.
			droppedBy(t, ts, notified, func() { must(t, fb.Precache(ctx, 3, "b3")) })
			untilLocalHit(t, fa, "a1", barrier)
			tierCall(t, fa, 2) // a's own write: kept
			barrier()
			hits := fa.Stats().LocalHits
			if v := tierCall(t, fa, 1); v != "a1" || fa.Stats().LocalHits == hits {
				t.Fatalf("after a's own write: %q, local hit %v; want a1 from the local tier", v, fa.Stats().LocalHits > hits)
			}

			// b's write: its notification alone must drop a's copies (a's marker reads
			// are held, so no reconcile can).
			gate := make(chan struct{})
			pg.hold.Store(&gate)
			defer close(gate)
			droppedBy(t, ts, notified, func() { must(t, fb.Precache(store.WithOrigin(ctx, name, otherID), 1, "b's")) })
			if v := tierCall(t, fa, 1); v != "b's" {
				t.Fatalf("after b's write was notified, a got %q, want b's", v)
			}
			pg.hold.Store(nil)
		})
	}
}
