package torture

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/mongostore"
)

var (
	flagDuration = flag.Duration("torture.duration", 0, "how long each torture run lasts (default: 3s, or 1.5s with -short)")
	flagWorkers  = flag.Int("torture.workers", 3, "worker processes per torture run")
	flagKeys     = flag.Int("torture.keys", 8, "distinct keys the workers fight over")
)

func TestMain(m *testing.M) {
	MaybeWorker()
	testserver.Main(m)
}

func duration() time.Duration {
	switch {
	case *flagDuration > 0:
		return *flagDuration
	case testing.Short():
		return 1500 * time.Millisecond
	}
	return 3 * time.Second
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// target is one store under test: how to name it as a URL for worker processes,
// given its server (nil for stores without one).
type target struct {
	name string
	kind string // testserver kind; "" for file and sqlite
	url  func(t *testing.T, srv *testserver.Server) string
}

// tierSlot reports whether the worker id ("w<slot>-<incarnation>") has an odd slot.
func tierSlot(id string) bool {
	slot, _, _ := strings.Cut(strings.TrimPrefix(id, "w"), "-")
	n, err := strconv.Atoi(slot)
	return err == nil && n%2 == 1
}

func mysqlURL(t *testing.T, srv *testserver.Server, table string) string {
	cfg, err := mysql.ParseDSN(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "mysql", User: url.UserPassword(cfg.User, cfg.Passwd), Host: cfg.Addr, Path: "/" + cfg.DBName,
		RawQuery: "table=" + table}
	if cfg.Passwd == "" {
		u.User = url.User(cfg.User)
	}
	return u.String()
}

func s3URL(srv *testserver.Server, prefix string) string {
	u := url.URL{Scheme: "s3", User: url.UserPassword(srv.AccessKey, srv.SecretKey), Host: "cachier-torture",
		Path: "/" + prefix}
	q := url.Values{"endpoint": {srv.URL}, "region": {"us-east-1"}, "path_style": {"true"}}
	u.RawQuery = q.Encode()
	return u.String()
}

var targets = []target{
	{"file", "", func(t *testing.T, _ *testserver.Server) string { return "file://" + t.TempDir() }},
	{"sqlite", "", func(t *testing.T, _ *testserver.Server) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "cache.db")
	}},
	{"redis", testserver.KindRedis, func(t *testing.T, srv *testserver.Server) string {
		return srv.URL + "?prefix=torture-" + randHex()
	}},
	{"redis-cluster", testserver.KindRedisCluster, func(t *testing.T, srv *testserver.Server) string {
		return "redis+cluster://" + strings.Join(srv.Addrs, ",") + "?prefix=torture-" + randHex()
	}},
	{"postgres", testserver.KindPostgres, func(t *testing.T, srv *testserver.Server) string {
		return srv.URL + "&table=torture_entries"
	}},
	{"mariadb", testserver.KindMariaDB, func(t *testing.T, srv *testserver.Server) string {
		return mysqlURL(t, srv, "torture_entries")
	}},
	{"memcached", testserver.KindMemcached, func(t *testing.T, srv *testserver.Server) string {
		return "memcache://" + srv.Addr + "?prefix=torture-" + randHex()
	}},
	{"ferretdb", testserver.KindFerretDB, func(t *testing.T, srv *testserver.Server) string {
		return strings.TrimSuffix(srv.URL, "/") + "/cachier_torture?collection=torture_" + randHex()
	}},
	{"minio", testserver.KindMinIO, func(t *testing.T, srv *testserver.Server) string {
		return s3URL(srv, "torture-"+randHex())
	}},
}

// sharedServer returns the shared server of a kind, or nil for "".
func sharedServer(t *testing.T, kind string) *testserver.Server {
	switch kind {
	case "":
		return nil
	case testserver.KindRedis:
		return testserver.Redis(t)
	case testserver.KindRedisCluster:
		return testserver.RedisCluster(t)
	case testserver.KindPostgres:
		return testserver.Postgres(t)
	case testserver.KindMariaDB:
		return testserver.MariaDB(t)
	case testserver.KindMemcached:
		return testserver.Memcached(t)
	case testserver.KindFerretDB:
		return testserver.FerretDB(t)
	case testserver.KindMinIO:
		return testserver.MinIO(t)
	}
	t.Fatalf("unknown kind %q", kind)
	return nil
}

// config is one torture run.
type config struct {
	url          string
	workers      int
	keys         int
	duration     time.Duration
	leaseTTL     time.Duration
	storeTimeout time.Duration
	// server, when set, is killed (SIGKILL) and restarted during the run.
	server *testserver.Server
	// serverDown is how long the server stays down each time.
	serverDown time.Duration
	// localTier gives the workers of odd slots a local tier (cachier.LocalTier), so
	// that processes with and without one share the store.
	localTier bool
}

// proc is one worker process.
type proc struct {
	id     string
	cmd    *exec.Cmd
	killed bool
	mu     sync.Mutex
	lines  []string
	stderr strings.Builder
	done   chan error
}

func (r *run) startWorker(t *testing.T, id string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envRole+"=worker", envURL+"="+r.cfg.url, envDir+"="+r.dir, envName+"="+r.name, envID+"="+id,
		envKeys+"="+strconv.Itoa(r.cfg.keys), envLeaseTTL+"="+r.cfg.leaseTTL.String(),
		envStoreTimeout+"="+r.cfg.storeTimeout.String(), envGoroutines+"=4",
		envLocalTier+"="+strconv.FormatBool(r.cfg.localTier && tierSlot(id)))
	p := &proc{id: id, cmd: cmd, done: make(chan error, 1)}
	cmd.Stderr = &lockedWriter{mu: &p.mu, b: &p.stderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	go func() {
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

// run is the state of one torture run.
type run struct {
	cfg  config
	dir  string
	name string

	procs    []*proc // every process started, killed or not
	live     []*proc // indexed by slot
	kills    int
	srvKills int
	lastKill time.Time
}

// summary is what a run did, for the log and the README's fault table.
type summary struct {
	workerKills, serverKills               int
	procs, survivors                       int
	ops                                    map[string]int
	computations, loggedComputations       int
	survivorComputations, survivorLogLines int
	present, absent                        int
	storeErrors                            int
	takeovers                              int
	phaseHits                              int
}

func (s summary) String() string {
	return fmt.Sprintf("worker SIGKILLs=%d server SIGKILLs=%d processes=%d survivors=%d ops=%v logged computations=%d "+
		"(survivors: %d reported, %d logged) store errors=%d takeovers=%d entries present=%d absent=%d hits after last restart=%d",
		s.workerKills, s.serverKills, s.procs, s.survivors, s.ops, s.loggedComputations,
		s.survivorComputations, s.survivorLogLines, s.storeErrors, s.takeovers, s.present, s.absent, s.phaseHits)
}

// torture runs worker processes against cfg.url while killing them (and the server,
// if any) at random, then checks the store and the workers' reports.
func torture(t *testing.T, cfg config) summary {
	t.Helper()
	if cfg.workers == 0 {
		cfg.workers = *flagWorkers
	}
	if cfg.keys == 0 {
		cfg.keys = *flagKeys
	}
	if cfg.duration == 0 {
		cfg.duration = duration()
	}
	if cfg.leaseTTL == 0 {
		cfg.leaseTTL = 2 * time.Second
	}
	if cfg.storeTimeout == 0 {
		cfg.storeTimeout = 10 * time.Second
	}
	r := &run{cfg: cfg, dir: t.TempDir(), name: "torture/" + randHex()}
	incarnation := 0
	spawn := func(slot int) {
		incarnation++
		p := r.startWorker(t, fmt.Sprintf("w%d-%d", slot, incarnation))
		r.procs = append(r.procs, p)
		r.live[slot] = p
	}
	r.live = make([]*proc, cfg.workers)
	for i := range cfg.workers {
		spawn(i)
	}

	// The server's own fault, on its own schedule: down once per third of the run.
	var (
		srvWG   sync.WaitGroup
		srvStop = make(chan struct{})
		srvMu   sync.Mutex
	)
	if cfg.server != nil {
		srvWG.Add(1)
		go func() {
			defer srvWG.Done()
			period := cfg.duration / 3
			stopKilling := time.Now().Add(cfg.duration - period)
			phase := 0
			for time.Now().Before(stopKilling) {
				select {
				case <-srvStop:
					return
				case <-time.After(period / 2):
				}
				cfg.server.Kill(t)
				time.Sleep(cfg.serverDown)
				cfg.server.Start(t)
				phase++
				srvMu.Lock()
				r.srvKills++
				srvMu.Unlock()
				if err := os.WriteFile(filepath.Join(r.dir, phaseFile), []byte(strconv.Itoa(phase)), 0o600); err != nil {
					t.Error(err)
				}
				select {
				case <-srvStop:
					return
				case <-time.After(period / 2):
				}
			}
		}()
	}

	// Kill a random worker at a random moment, and start a new one in its place; the
	// last fifth of the run has no kills, so that the survivors have done some work
	// by the time they report.
	end := time.Now().Add(cfg.duration)
	deadline := end.Add(-cfg.duration / 5)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(20+mrand.IntN(300)) * time.Millisecond)
		slot := mrand.IntN(cfg.workers)
		p := r.live[slot]
		select {
		case err := <-p.done:
			t.Fatalf("worker %s exited on its own: %v\n%s", p.id, err, p.stderrText())
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		p.killed = true
		r.kills++
		r.lastKill = time.Now()
		spawn(slot)
	}
	time.Sleep(time.Until(end))
	close(srvStop)
	srvWG.Wait()
	if cfg.server != nil && !cfg.server.Running() {
		cfg.server.Start(t)
	}
	// Wait until a survivor says it was served from the store after the last restart
	// (a condition, not a timer: a busy machine may take seconds to get there).
	if cfg.server != nil && r.srvKills > 0 {
		r.awaitPhaseHit(t, r.srvKills)
	}

	// Stop: survivors finish their operation and report.
	if err := os.WriteFile(filepath.Join(r.dir, stopFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range r.live {
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("worker %s failed: %v\n%s", p.id, err, p.stderrText())
			}
		case <-time.After(3 * time.Minute):
			t.Fatalf("worker %s did not stop within 3 minutes\n%s", p.id, p.stderrText())
		}
	}
	sum := r.check(t)
	sum.serverKills = r.srvKills
	t.Logf("%s", sum)
	return sum
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// logEntry is one line of a worker's log.
type logEntry struct {
	kind string // C computed, F failed on purpose, P precached
	key  int
	id   string
}

// check verifies the store and the workers' reports after a run.
func (r *run) check(t *testing.T) summary {
	sum := summary{workerKills: r.kills, procs: len(r.procs), ops: map[string]int{}}
	tokens := map[string]logEntry{}
	perWorker := map[string]int{} // computations (C and F lines) by worker
	for _, p := range r.procs {
		b, err := os.ReadFile(filepath.Join(r.dir, "log."+p.id))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if line == "" {
				continue
			}
			f := strings.Fields(line)
			key, err := 0, error(nil)
			if len(f) == 3 {
				key, err = strconv.Atoi(f[2])
			}
			if len(f) != 3 || err != nil || !strings.HasPrefix(f[1], p.id+".") || !strings.Contains("CFP", f[0]) {
				t.Fatalf("log of %s, line %d: malformed %q", p.id, i+1, line)
			}
			if _, dup := tokens[f[1]]; dup {
				t.Fatalf("token %s logged twice", f[1])
			}
			tokens[f[1]] = logEntry{kind: f[0], key: key, id: p.id}
			if f[0] != "P" {
				perWorker[p.id]++
				sum.loggedComputations++
			}
		}
	}

	// Survivors: what they report must match what they logged, exactly. A killed
	// worker reports nothing; its log may end at any line, which is all it promises.
	lastPhase := readPhase(r.dir)
	for _, p := range r.live {
		sum.survivors++
		p.mu.Lock()
		lines := append([]string(nil), p.lines...)
		p.mu.Unlock()
		var stats map[string]int
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "stats "):
				stats = fields(l)
			case strings.HasPrefix(l, "ops "):
				for op, n := range fields(l) {
					sum.ops[op] += n
				}
			case strings.HasPrefix(l, "seen "):
				tok := strings.TrimPrefix(l, "seen ")
				e, ok := tokens[tok]
				switch {
				case !ok:
					t.Errorf("worker %s received a value with token %s that no worker logged", p.id, tok)
				case e.kind == "F":
					t.Errorf("worker %s received the result of a failed computation %s", p.id, tok)
				}
			}
		}
		if stats == nil {
			t.Fatalf("worker %s reported no stats: %q\n%s", p.id, lines, p.stderrText())
		}
		if stats["computations"] != perWorker[p.id] {
			t.Errorf("worker %s: Stats().Computations = %d, but it logged %d computations", p.id, stats["computations"], perWorker[p.id])
		}
		if stats["decode_errors"] != 0 {
			t.Errorf("worker %s: %d decode errors: something wrote a bad entry", p.id, stats["decode_errors"])
		}
		sum.survivorComputations += stats["computations"]
		sum.survivorLogLines += perWorker[p.id]
		sum.storeErrors += stats["store_errors"]
		sum.takeovers += stats["takeovers"]
		if stats["phase"] == lastPhase {
			sum.phaseHits += stats["phase_hits"]
		}
	}

	// Entries and leases, through a fresh store.
	ctx := context.Background()
	st, err := store.Open(ctx, r.cfg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A killed holder's lease lasts at most leaseTTL past its last renewal, which came
	// before the kill; survivors released theirs. Wait that long, then none may be left.
	time.Sleep(time.Until(r.lastKill.Add(r.cfg.leaseTTL + 200*time.Millisecond)))
	var stuck []string
	for l, err := range st.Leases(ctx, r.name) {
		if errors.Is(err, errors.ErrUnsupported) {
			break
		}
		if err != nil {
			t.Fatalf("Leases: %v", err)
		}
		stuck = append(stuck, fmt.Sprintf("%s by %s until %s", l.Key.ID, l.Owner, l.ExpiresAt.Format(time.RFC3339Nano)))
	}
	if len(stuck) > 0 {
		t.Errorf("leases still held after every holder stopped and %v passed: %v", r.cfg.leaseTTL, stuck)
	}

	var missing = errors.New("absent")
	checker, err := cachier.Wrap(func(context.Context, int) (Value, error) { return Value{}, missing },
		cachier.Name(r.name), cachier.WithStore(st), cachier.FailOnStoreError(true),
		cachier.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	for key := range r.cfg.keys {
		k, _ := checker.Key(key)
		owner := store.Owner{Host: "checker", PID: os.Getpid(), Token: randHex()}
		lease, err := st.Acquire(ctx, k, owner, time.Minute)
		// On MongoDB a holder killed while it swapped its lease record (a takeover, a
		// renewal or a release) leaves a claim that keeps others from swapping that
		// record for mongostore.ClaimTTL, as its documentation says. CI saw it once.
		for claimed := r.lastKill.Add(mongostore.ClaimTTL + time.Second); errors.Is(err, store.ErrLeaseHeld) &&
			strings.HasPrefix(r.cfg.url, "mongodb") && time.Now().Before(claimed); {
			time.Sleep(100 * time.Millisecond) // the claim's expiry is on the server's records, by wall time
			lease, err = st.Acquire(ctx, k, owner, time.Minute)
		}
		if err != nil {
			t.Errorf("key %d: Acquire after every holder stopped: %v", key, err)
		} else if err := st.Release(ctx, lease); err != nil {
			t.Errorf("key %d: Release: %v", key, err)
		}
		v, err := checker.Call(ctx, key)
		switch {
		case errors.Is(err, missing):
			sum.absent++
			continue
		case err != nil:
			t.Errorf("key %d: %v", key, err)
			continue
		}
		sum.present++
		if err := v.Check(key); err != nil {
			t.Errorf("stored entry: %v", err)
			continue
		}
		e, ok := tokens[v.Token]
		switch {
		case !ok:
			t.Errorf("key %d holds a value with token %q that no worker logged", key, v.Token)
		case e.key != key:
			t.Errorf("key %d holds the value worker %s computed for key %d", key, e.id, e.key)
		case e.kind == "F":
			t.Errorf("key %d holds the result of a computation that failed (%s)", key, v.Token)
		}
	}
	if s := checker.Stats(); s.DecodeErrors != 0 || s.StoreErrors != 0 {
		t.Errorf("checker: %d decode errors, %d store errors", s.DecodeErrors, s.StoreErrors)
	}
	return sum
}

// awaitPhaseHit waits, for up to a minute, until a live worker has reported a hit
// from the store in the given phase.
func (r *run) awaitPhaseHit(t *testing.T, phase int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, p := range r.live {
			if _, err := os.Stat(filepath.Join(r.dir, fmt.Sprintf("phasehit.%d.%s", phase, p.id))); err == nil {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fields parses "word a=1 b=2" into {a:1, b:2}.
func fields(line string) map[string]int {
	m := map[string]int{}
	for _, f := range strings.Fields(line)[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(v)
		m[k] = n
	}
	return m
}

// TestTorture: worker processes call, refresh, precache, invalidate and clear one
// store while the driver SIGKILLs them at random and starts new ones. No entry is
// wrong afterwards, no lease outlives its TTL, and every survivor's computation count
// matches its log. The workers of odd slots keep a local tier, so every promise is
// checked with and without one on every store. (TestTortureServerKilled runs
// without: its check that survivors are served from the store again counts hits, and
// a local tier's hits are not the store's.)
func TestTorture(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			srv := sharedServer(t, tg.kind)
			sum := torture(t, config{url: tg.url(t, srv), localTier: true})
			if sum.workerKills == 0 || sum.present+sum.absent != *flagKeys {
				t.Fatalf("the run did nothing: %s", sum)
			}
		})
	}
}

// TestTortureServerKilled is TestTorture with the store's server SIGKILLed and
// restarted during the run: every Call still returns the function's result (the
// workers fail on anything else), and the survivors are served from the store again
// after the last restart.
func TestTortureServerKilled(t *testing.T) {
	for _, tg := range targets {
		if tg.kind == "" || tg.kind == testserver.KindRedisCluster {
			continue // no server to kill; a cluster's failover is the cluster's business
		}
		t.Run(tg.name, func(t *testing.T) {
			srv := testserver.Dedicated(t, tg.kind)
			d := max(duration(), 3*time.Second)
			sum := torture(t, config{url: tg.url(t, srv), server: srv, serverDown: 500 * time.Millisecond,
				storeTimeout: 2 * time.Second, duration: d})
			if sum.serverKills == 0 {
				t.Fatalf("the server was never killed: %s", sum)
			}
			if sum.phaseHits == 0 {
				t.Errorf("no survivor was served from the store after the server's last restart: %s", sum)
			}
		})
	}
}
