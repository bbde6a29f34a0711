package redisstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// eventually bounds waits for eventual states; no test asserts on how fast they come.
const eventually = 15 * time.Second

func singleClient(tb testing.TB) *redis.Client {
	tb.Helper()
	srv := testserver.Redis(tb)
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		tb.Fatal(err)
	}
	c := redis.NewClient(opt)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func clusterClient(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	srv := testserver.RedisCluster(tb)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: srv.Addrs})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

type harness struct {
	client redis.UniversalClient
}

func (h harness) MakeStore(context.Context, *testing.T) (store.Driver, error) {
	return New(h.client, &Options{Prefix: "cachier-test"})
}

func (harness) Close() {}

// NativeTTL makes the storetest.NativeTTLHarness: the entry key's PTTL.
func (harness) NativeTTL(ctx context.Context, d store.Driver, k store.Key) (time.Duration, error) {
	return nativeTTL(ctx, d, k)
}

// nativeTTL is the PTTL of k's entry key; no expiry comes back as a negative duration.
func nativeTTL(ctx context.Context, d store.Driver, k store.Key) (time.Duration, error) {
	s := base(d)
	return s.client.PTTL(ctx, s.keys.name(k)).Result()
}

func TestConformance(t *testing.T) {
	c := singleClient(t)
	storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return harness{c} }, storetest.Capabilities{})
}

func TestConformanceCluster(t *testing.T) {
	c := clusterClient(t)
	storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return harness{c} }, storetest.Capabilities{})
}

func TestOpenURL(t *testing.T) {
	srv := testserver.Redis(t)
	ctx := context.Background()
	s, err := store.Open(ctx, srv.URL+"?prefix=url-test&dial_timeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	k := store.Key{Namespace: storetest.Namespace(t), ID: "k"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// The record lives under the prefix from the URL.
	raw := singleClient(t)
	if n, err := raw.Exists(ctx, "url-test:{"+escape(k.Namespace)+":k}:v").Result(); err != nil || n != 1 {
		t.Errorf("record under the URL's prefix: exists = %d, %v; want 1", n, err)
	}
	if err := s.Clear(ctx, k.Namespace); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A store opened from a URL owns its client, and Close closed it.
	if _, err := s.Get(ctx, k); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Close of a URL-opened store = %v; want the closed client's error", err)
	}
}

func TestOpenURLCluster(t *testing.T) {
	srv := testserver.RedisCluster(t)
	// The first seed in the host, the others as addr parameters.
	u := "redis+cluster://" + srv.Addrs[0] + "?prefix=url-test"
	for _, a := range srv.Addrs[1:] {
		u += "&addr=" + a
	}
	s, _ := storetest.Opened[*ShardedStore](t, u)
	if _, ok := base(s).Client().(*redis.ClusterClient); !ok {
		t.Fatalf("%s opened a %T, want *redis.ClusterClient", u, base(s).Client())
	}
	k := store.Key{Namespace: storetest.Namespace(t), ID: "k"}
	ctx := context.Background()
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Get(ctx, k); err != nil || string(e.Value) != "v" {
		t.Errorf("Get = %q, %v", e.Value, err)
	}
	if err := s.Clear(ctx, k.Namespace); err != nil {
		t.Fatal(err)
	}
}

// TestClusterOddIDs checks that IDs holding hash-tag braces and separators keep an
// entry, its lease and its channel on one slot, and that different IDs spread.
func TestClusterOddIDs(t *testing.T) {
	c := clusterClient(t)
	d, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, kr := store.Adapt(d), base(d).keys
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	ns := "{ns}:" + storetest.Namespace(t) + ":{x}"
	t.Cleanup(func() { _ = s.Clear(ctx, ns); _, _ = s.ReleaseAll(ctx, ns) })
	ids := []string{"{a}", "{a}b", "{a}c", "a}{b", "}", "{", "{}", ":", "a:b", "}:v", "}:l", ":{a}:v", "%7B", "{%}"}
	slots := map[int64]bool{}
	for i, id := range ids {
		k := store.Key{Namespace: ns, ID: id}
		if err := s.Set(ctx, k, store.Entry{Value: fmt.Appendf(nil, "%d", i), StoredAt: time.Now()}); err != nil {
			t.Fatalf("Set(%q): %v", id, err)
		}
		l, err := s.Acquire(ctx, k, store.Owner{Host: "h", PID: 1, Token: id}, time.Minute)
		if err != nil {
			t.Fatalf("Acquire(%q): %v", id, err)
		}
		if _, err := s.Renew(ctx, l, time.Minute); err != nil {
			t.Fatalf("Renew(%q): %v", id, err)
		}
		var got []int64
		lk := store.Key{Namespace: store.InternalPrefix + ns, ID: id}
		for _, name := range []string{kr.name(k), kr.name(lk), kr.channel(k)} {
			slot, err := c.ClusterKeySlot(ctx, name).Result()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, slot)
		}
		if got[0] != got[1] || got[0] != got[2] {
			t.Errorf("%q: entry, lease and channel on slots %v; want one slot", id, got)
		}
		slots[got[0]] = true
	}
	if len(slots) < len(ids)/2 {
		t.Errorf("%d IDs landed on only %d slots; the hash tag does not include the ID", len(ids), len(slots))
	}
	for i, id := range ids {
		e, err := s.Get(ctx, store.Key{Namespace: ns, ID: id})
		if err != nil || string(e.Value) != fmt.Sprint(i) {
			t.Errorf("Get(%q) = %q, %v; want %d", id, e.Value, err, i)
		}
	}
	var listed []string
	for info, err := range s.Entries(ctx, ns) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, info.Key.ID)
	}
	var leased []string
	for l, err := range s.Leases(ctx, ns) {
		if err != nil {
			t.Fatal(err)
		}
		leased = append(leased, l.Key.ID)
	}
	want := slices.Sorted(slices.Values(ids))
	if slices.Sort(listed); !slices.Equal(listed, want) {
		t.Errorf("Entries = %q, want %q", listed, want)
	}
	if slices.Sort(leased); !slices.Equal(leased, want) {
		t.Errorf("Leases = %q, want %q", leased, want)
	}
	if n, err := s.ReleaseAll(ctx, ns); err != nil || n != len(ids) {
		t.Errorf("ReleaseAll = %d, %v; want %d", n, err, len(ids))
	}
}

// TestCorruptRecord checks that garbage under a value key is a miss that says why.
func TestCorruptRecord(t *testing.T) {
	c := singleClient(t)
	d, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := base(d)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	ns := storetest.Namespace(t)
	t.Cleanup(func() { _ = s.Clear(ctx, ns) })
	good := encodeRecord(store.Entry{Value: []byte("v"), StoredAt: time.Now()})
	for i, raw := range [][]byte{nil, []byte("x"), good[:headerLen-1], append([]byte{'c', 9}, good[2:]...), []byte("not a record at all")} {
		k := store.Key{Namespace: ns, ID: fmt.Sprint(i)}
		if err := c.Set(ctx, s.keys.name(k), raw, 0).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := s.Get(ctx, k)
		if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("Get of %q = %v; want an error matching ErrNotFound and ErrCorrupt", raw, err)
		}
	}
	n, err := s.DeleteBefore(ctx, ns, time.Unix(0, 0))
	if err != nil || n != 5 {
		t.Errorf("DeleteBefore over 5 corrupt records = %d, %v; want 5 (garbage is reclaimed)", n, err)
	}
}

// TestEmptyRecordIsCorrupt checks every read path of the store, on one server and on
// a cluster, on a record holding the empty string and on a missing key: the empty
// record is damage (ErrCorrupt, which also matches ErrNotFound), the missing key a
// plain miss. The batched read once read both as a miss (MGET read into strings has
// "" for either), so a damaged entry met on a claim's second read went uncounted.
func TestEmptyRecordIsCorrupt(t *testing.T) {
	for name, c := range map[string]redis.UniversalClient{
		"single":  singleClient(t),
		"cluster": clusterClient(t),
	} {
		t.Run(name, func(t *testing.T) {
			d, err := New(c, &Options{Prefix: "cachier-empty"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			s := base(d)
			ctx := context.Background()
			ns := storetest.Namespace(t)
			t.Cleanup(func() { _ = s.Clear(ctx, ns); _ = s.Clear(ctx, store.InternalPrefix+ns) })
			empty, missing := store.Key{Namespace: ns, ID: "empty"}, store.Key{Namespace: ns, ID: "missing"}
			good := store.Key{Namespace: ns, ID: "good"}
			if err := c.Set(ctx, s.keys.name(empty), "", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := s.Set(ctx, good, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			check := func(path string, k store.Key, err error) {
				t.Helper()
				switch k {
				case empty:
					if !errors.Is(err, ErrCorrupt) || !errors.Is(err, store.ErrNotFound) {
						t.Errorf("%s of an empty record: %v; want an error matching ErrCorrupt and ErrNotFound", path, err)
					}
				case missing:
					if !errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrCorrupt) {
						t.Errorf("%s of a missing key: %v; want ErrNotFound without ErrCorrupt", path, err)
					}
				default:
					if err != nil {
						t.Errorf("%s of a stored entry: %v", path, err)
					}
				}
			}
			ks := []store.Key{empty, good, missing, empty}
			for _, k := range ks[:3] {
				_, err := s.Get(ctx, k)
				check("Get", k, err)
			}
			_, errs, err := s.GetMany(ctx, ks)
			if err != nil {
				t.Fatal(err)
			}
			for i, k := range ks {
				check(fmt.Sprintf("GetMany[%d]", i), k, errs[i])
			}
			es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
			if err := s.GetManyInto(ctx, ks, es, errs); err != nil {
				t.Fatal(err)
			}
			for i, k := range ks {
				check(fmt.Sprintf("GetManyInto[%d]", i), k, errs[i])
			}
			if string(es[1].Value) != "v" {
				t.Errorf("GetManyInto[1] = %q, want %q", es[1].Value, "v")
			}
			if single, ok := d.(*Store); ok {
				// The scripts of ReadOrAcquire and ReadOrClaim, bare.
				for _, ifMissing := range []bool{false, true} {
					for _, k := range []store.Key{empty, missing} {
						rk := store.Key{Namespace: store.InternalPrefix + ns, ID: k.ID}
						rec := store.Entry{Value: []byte("lease"), StoredAt: time.Now()}
						r, err := single.getAndCreate(ctx, k, nil, rk, rec, ifMissing)
						if err != nil {
							t.Fatal(err)
						}
						check(fmt.Sprintf("getAndCreate (ifMissing %v)", ifMissing), k, r.GetErr)
						if err := single.Delete(ctx, rk); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			// Through the portable layer: over the scripts on one server (a claim that
			// finds the empty record and takes the lease after it reads again, with
			// the batched read), over the batched read and Swap on a cluster.
			p := store.Adapt(d)
			o := store.Owner{Host: "h", PID: 1, Token: "t"}
			for _, k := range []store.Key{empty, missing} {
				cl, err := p.(store.MissPath).ReadOrAcquire(ctx, k, nil, o, time.Minute)
				if err != nil || cl.LeaseErr != nil {
					t.Fatalf("ReadOrAcquire: %v, %v", err, cl.LeaseErr)
				}
				check("ReadOrAcquire", k, cl.Err)
				if err := p.Release(ctx, cl.Lease); err != nil {
					t.Fatal(err)
				}
				cl, err = p.(store.Claimer).ReadOrClaim(ctx, k, nil, o, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				check("ReadOrClaim", k, cl.Err)
				if cl.LeaseErr == nil {
					if err := p.Release(ctx, cl.Lease); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// TestOutage stops the server under a store: calls fail within their context, and
// work again once the server is back, with the same Store and a working Watch.
func TestOutage(t *testing.T) {
	srv := testserver.Dedicated(t, testserver.KindRedis)
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.DialTimeout = time.Second
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	d, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := store.Adapt(d).(interface {
		store.Store
		store.Notifier
	})
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	k := store.Key{Namespace: storetest.Namespace(t), ID: "k"}
	set := func(ctx context.Context) error {
		return s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()})
	}
	if err := set(ctx); err != nil {
		t.Fatal(err)
	}
	woken, stop, err := s.Watch(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	srv.Stop(t)
	calls := map[string]func(context.Context) error{
		"Get":   func(ctx context.Context) error { _, err := s.Get(ctx, k); return err },
		"Set":   set,
		"Clear": func(ctx context.Context) error { return s.Clear(ctx, k.Namespace) },
		"Acquire": func(ctx context.Context) error {
			_, err := s.Acquire(ctx, k, store.Owner{Token: "t"}, time.Minute)
			return err
		},
		"Watch": func(ctx context.Context) error {
			_, stop, err := s.Watch(ctx, store.Key{Namespace: k.Namespace, ID: "other"})
			if err == nil {
				stop()
			}
			return err
		},
	}
	for name, call := range calls {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		errc := make(chan error, 1)
		go func() { errc <- call(cctx) }()
		select {
		case err := <-errc:
			if err == nil || errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s with the server down = %v; want a connection error", name, err)
			}
		case <-time.After(eventually):
			t.Errorf("%s with the server down did not return within %s of its 2s context", name, eventually)
		}
		cancel()
	}

	srv.Start(t) // returns once the server accepts connections
	// go-redis drops the pool's dead connections as it meets them and dials anew; a
	// few tries are enough, with no wait between them.
	for try := 1; ; try++ {
		err := set(ctx)
		if err == nil {
			break
		}
		if try == 10 {
			t.Fatalf("Set still fails after the server came back, %d tries: %v", try, err)
		}
	}
	if e, err := s.Get(ctx, k); err != nil || string(e.Value) != "v" {
		t.Fatalf("Get after restart = %q, %v", e.Value, err)
	}
	// The watch from before the outage works again: drain whatever the reconnection
	// woke, then a Set must wake it.
	select {
	case <-woken:
	case <-time.After(eventually):
		t.Fatalf("no wake-up within %s of the reconnection and a Set", eventually)
	}
	if err := set(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woken:
	case <-time.After(eventually):
		t.Fatalf("no wake-up within %s of a Set after the outage", eventually)
	}
	if err := s.Clear(ctx, k.Namespace); err != nil {
		t.Fatal(err)
	}
}

// TestWatchSharesOneConnection checks that many watched keys use one subscription
// connection, and that it unsubscribes when the last watcher stops.
func TestWatchSharesOneConnection(t *testing.T) {
	c := singleClient(t)
	d, err := New(c, &Options{Prefix: "cachier-watch-test"})
	if err != nil {
		t.Fatal(err)
	}
	s := base(d)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	ns := storetest.Namespace(t)
	var stops []func()
	for i := range 50 {
		k := store.Key{Namespace: ns, ID: fmt.Sprint(i % 25)} // two watchers per key
		_, stop, err := s.Watch(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, stop)
	}
	pattern := "cachier-watch-test:{" + escape(ns) + ":*"
	chans, err := c.PubSubChannels(ctx, pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 25 {
		t.Errorf("%d channels subscribed for 25 watched keys; want 25", len(chans))
	}
	counts, err := c.PubSubNumSub(ctx, chans...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for ch, n := range counts {
		if n != 1 {
			t.Errorf("channel %s has %d subscribers; want 1 (one connection per Store)", ch, n)
		}
	}
	for _, stop := range stops {
		stop()
	}
	// The UNSUBSCRIBEs went down the subscription connection before the SUBSCRIBE of
	// one more Watch, which returns once a PING written after it is answered: by then
	// the server has processed them all.
	_, stop, err := s.Watch(ctx, store.Key{Namespace: ns, ID: "last"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	chans, err = c.PubSubChannels(ctx, pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := s.keys.channel(store.Key{Namespace: ns, ID: "last"}); len(chans) != 1 || chans[0] != want {
		t.Errorf("channels after every other watcher stopped = %q; want only %q", chans, want)
	}
}

// ---- benchmarks: the store against the raw driver, on one server, in one run ----

func benchSetup(b *testing.B) (store.Store, *driver, store.Key, store.Key) {
	d, err := New(singleClient(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	s := store.Adapt(d)
	b.Cleanup(func() { _ = s.Close() })
	hit, miss := storetest.BenchEntry(b, s)
	return s, base(d), hit, miss
}

// BenchmarkWake measures the time from the start of a Set in one goroutine to the
// wake-up of a Watch in another (reported as ns/wake).
func BenchmarkWake(b *testing.B) {
	_, d, hit, _ := benchSetup(b)
	ctx := context.Background()
	s := d
	ch, stop, err := s.Watch(ctx, hit)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	woke := make(chan time.Time)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				woke <- time.Now()
			case <-quit:
				return
			}
		}
	}()
	defer close(quit)
	var total atomic.Int64
	e := store.Entry{Value: []byte("v"), StoredAt: time.Now()}
	n := 0
	for b.Loop() {
		start := time.Now()
		if err := s.Set(ctx, hit, e); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-woke:
			total.Add(int64(at.Sub(start)))
		case <-time.After(eventually):
			b.Fatal("no wake-up")
		}
		n++
	}
	b.ReportMetric(float64(total.Load())/float64(n), "ns/wake")
}

// BenchmarkStore runs the shared storetest benchmarks.
func BenchmarkStore(b *testing.B) {
	s, err := New(singleClient(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	storetest.RunBenchmarks(b, s)
}

func BenchmarkStoreCluster(b *testing.B) {
	s, err := New(clusterClient(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	storetest.RunBenchmarks(b, s)
}

// sentinel starts a redis-server in Sentinel mode that monitors master (as "m") and
// returns its address. The process is this test's own and is killed when it ends.
func sentinel(t *testing.T, master string) string {
	t.Helper()
	bin := testserver.Binary(t, testserver.KindRedis, "redis-server") // fails under CI=true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	host, port, _ := net.SplitHostPort(addr)
	mhost, mport, _ := net.SplitHostPort(master)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	cfg := fmt.Sprintf("port %s\nbind %s\ndaemonize no\ndir %s\nsentinel monitor m %s %s 1\n", port, host, dir, mhost, mport)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Sentinel logs "+monitor master m" once it listens and monitors m: wait for that
	// line, not for a poll to succeed.
	monitoring := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "+monitor master m ") {
				close(monitoring)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out) // keep the pipe drained until the process exits
	}()
	select {
	case <-monitoring:
	case <-time.After(eventually):
		t.Fatalf("Sentinel on %s did not log that it monitors master m within %s", addr, eventually)
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer sc.Close()
	if got, err := sc.GetMasterAddrByName(context.Background(), "m").Result(); err != nil || len(got) != 2 {
		t.Fatalf("Sentinel on %s, monitoring m, answers %v, %v for its address", addr, got, err)
	}
	return addr
}

// TestConformanceSentinel runs the suite through a failover client opened from a
// redis+sentinel:// URL.
func TestConformanceSentinel(t *testing.T) {
	srv := testserver.Dedicated(t, testserver.KindRedis)
	addr := sentinel(t, srv.Addr)
	u := "redis+sentinel://" + addr + "/0?master=m&prefix=cachier-sentinel"
	storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return urlHarness{u} }, storetest.Capabilities{})
}

// urlHarness opens every store from a URL, so the store owns (and closes) its client.
type urlHarness struct{ url string }

func (h urlHarness) MakeStore(ctx context.Context, _ *testing.T) (store.Driver, error) {
	return store.Open(ctx, h.url)
}

func (urlHarness) Close() {}

// NativeTTL makes the storetest.NativeTTLHarness.
func (urlHarness) NativeTTL(ctx context.Context, d store.Driver, k store.Key) (time.Duration, error) {
	return nativeTTL(ctx, d, k)
}
