// Package testserver starts throwaway servers for tests: redis-server (single and a
// 3-master cluster), PostgreSQL, MariaDB, memcached, FerretDB (MongoDB wire protocol)
// and MinIO (S3), on free loopback ports, from the binaries on the machine, and stops
// them by their own PID.
//
// A test may use a server the machine already runs only through an explicit URL
// variable (see the Env* constants); it must then touch only data it created.
//
// When a binary is missing the test is skipped with a loud message; under CI=true it
// fails instead, because a skipped store test proves nothing. scripts/install-test-deps
// installs every binary; the Go-built ones (FerretDB, MinIO) go to the directory named
// by $CACHIER_TESTBIN (default ~/.cache/cachier-testbin), which is searched after PATH
// and the standard locations.
//
// Shared servers are started at most once per test binary and stopped by Main, which
// the package's TestMain must call:
//
//	func TestMain(m *testing.M) { testserver.Main(m) }
//
// Every server runs in its own process group with a parent-death signal (Linux), so a
// test binary that crashes or is killed leaves no server behind; data directories live
// under one temporary directory per test binary, removed by Main, and directories left
// by crashed binaries are removed by the next run.
//
// Servers are tuned for tests, not durability: fsync is off wherever the engine allows.
package testserver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that point tests at servers the machine already runs.
const (
	EnvRedisURL     = "CACHIER_TEST_REDIS_URL"     // redis://127.0.0.1:6379/0
	EnvRedisCluster = "CACHIER_TEST_REDIS_CLUSTER" // host:port,host:port,host:port
	EnvPostgresURL  = "CACHIER_TEST_POSTGRES_URL"  // postgres://user@host:port/db?sslmode=disable
	EnvMySQLURL     = "CACHIER_TEST_MYSQL_URL"     // go-sql-driver DSN: user:pass@tcp(host:port)/db
	EnvMemcacheAddr = "CACHIER_TEST_MEMCACHE_ADDR" // host:port
	EnvMongoURL     = "CACHIER_TEST_MONGODB_URL"   // mongodb://host:port/
	EnvS3URL        = "CACHIER_TEST_S3_URL"        // http://access:secret@host:port (path-style endpoint)
)

// EnvTestBin names the directory holding the Go-built servers (ferretdb, minio).
// Default: $HOME/.cache/cachier-testbin.
const EnvTestBin = "CACHIER_TESTBIN"

// Server kinds, for Dedicated and Server.Name.
const (
	KindRedis        = "redis"
	KindRedisCluster = "redis-cluster"
	KindPostgres     = "postgres"
	KindMariaDB      = "mariadb"
	KindMemcached    = "memcached"
	KindFerretDB     = "ferretdb"
	KindMinIO        = "minio"
)

// Kinds lists every server kind.
var Kinds = []string{
	KindRedis, KindRedisCluster, KindPostgres, KindMariaDB, KindMemcached, KindFerretDB, KindMinIO,
}

// StartTimeout bounds how long a server may take to answer its protocol after start.
const StartTimeout = 90 * time.Second

// stopGrace is how long a server has to exit after its stop signal before SIGKILL.
const stopGrace = 10 * time.Second

// Server is one running server.
//
//	Redis:        URL redis://127.0.0.1:PORT/0
//	RedisCluster: Addrs (three masters); URL redis://127.0.0.1:P1?addr=127.0.0.1:P2&addr=127.0.0.1:P3
//	              (the go-redis ParseClusterURL form)
//	Postgres:     URL postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
//	MariaDB:      URL root@tcp(127.0.0.1:PORT)/test (a go-sql-driver DSN)
//	Memcached:    Addr 127.0.0.1:PORT
//	FerretDB:     URL mongodb://127.0.0.1:PORT/
//	MinIO:        URL http://127.0.0.1:PORT, AccessKey, SecretKey
type Server struct {
	Name      string   // "redis", "postgres", ...
	Addr      string   // host:port of the first node
	Addrs     []string // every node (a cluster has several)
	URL       string
	AccessKey string // MinIO only
	SecretKey string // MinIO only
	External  bool   // came from an Env* variable: never stopped or restarted

	dedicated bool
	dir       string // data and logs; removed when the server is discarded

	mu      sync.Mutex // serializes Start and Stop
	nodes   []*node
	started bool // the first start (setup, cluster creation) has been done
	// afterStart runs once every node answers; first reports the first start.
	afterStart func(s *Server, first bool) error
}

// Redis returns the shared redis-server of this test binary, or the server named by
// EnvRedisURL.
func Redis(t testing.TB) *Server { t.Helper(); return shared(t, KindRedis) }

// RedisCluster returns the shared 3-master redis cluster of this test binary, or the
// cluster named by EnvRedisCluster.
func RedisCluster(t testing.TB) *Server { t.Helper(); return shared(t, KindRedisCluster) }

// Postgres returns the shared PostgreSQL server of this test binary, or the server
// named by EnvPostgresURL.
func Postgres(t testing.TB) *Server { t.Helper(); return shared(t, KindPostgres) }

// MariaDB returns the shared MariaDB server of this test binary, or the server named by
// EnvMySQLURL.
func MariaDB(t testing.TB) *Server { t.Helper(); return shared(t, KindMariaDB) }

// Memcached returns the shared memcached of this test binary, or the server named by
// EnvMemcacheAddr.
func Memcached(t testing.TB) *Server { t.Helper(); return shared(t, KindMemcached) }

// FerretDB returns the shared FerretDB (MongoDB wire protocol, SQLite backend) of this
// test binary, or the server named by EnvMongoURL. FerretDB has no TTL indexes and no
// transactions.
func FerretDB(t testing.TB) *Server { t.Helper(); return shared(t, KindFerretDB) }

// MinIO returns the shared MinIO (S3) of this test binary, or the server named by
// EnvS3URL.
func MinIO(t testing.TB) *Server { t.Helper(); return shared(t, KindMinIO) }

// Dedicated starts a fresh server of the given kind (see the Kind* constants), owned by
// the test, for tests that stop and restart it (outages). It is stopped and its data
// removed when the test ends. It never uses an Env* server.
func Dedicated(t testing.TB, kind string) *Server {
	t.Helper()
	s, err := startNew(kind, true)
	if err != nil {
		fail(t, kind, err)
	}
	t.Cleanup(func() { s.discard() })
	return s
}

// startNew prepares and starts a server. A port taken by someone else between choosing
// it and the server binding it is retried on fresh ports.
func startNew(kind string, dedicated bool) (*Server, error) {
	for attempt := 1; ; attempt++ {
		s, err := newServer(kind, dedicated)
		if err != nil {
			return nil, err
		}
		err = s.start()
		if err == nil {
			return s, nil
		}
		s.discard()
		if attempt == 3 || !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			return nil, err
		}
	}
}

// Stop stops the server: its stop signal by PID (SIGTERM; SIGINT, the fast shutdown,
// for PostgreSQL), then SIGKILL to its process group after a grace period. The data
// directory and the ports are kept for Start, so data survives a restart (a dedicated
// redis saves on a graceful stop; memcached keeps nothing). Only a Dedicated server may
// be stopped.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.checkOwned(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(stopGrace); err != nil {
		t.Fatalf("testserver: stop %s: %v", s.Name, err)
	}
}

// Kill stops the server with SIGKILL at once, as a crash would (no shutdown, no final
// save). Only a Dedicated server may be killed; Start restarts it.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.checkOwned(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(0); err != nil {
		t.Fatalf("testserver: kill %s: %v", s.Name, err)
	}
}

// Start starts a stopped server again on the same ports and data directory, and waits
// until it answers. Starting a running server does nothing.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.checkOwned(); err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("testserver: restart %s: %v", s.Name, err)
	}
}

// Running reports whether every process of the server is running (true for an
// External server).
func (s *Server) Running() bool {
	if s.External {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if !n.running() {
			return false
		}
	}
	return len(s.nodes) > 0
}

// Log returns the tail of the server's log (every node's), for failure messages.
func (s *Server) Log() string {
	var b strings.Builder
	for _, n := range s.nodes {
		fmt.Fprintf(&b, "--- %s (%s)\n%s", n.name, n.logPath, logTail(n.logPath, 40))
	}
	return b.String()
}

func (s *Server) checkOwned() error {
	switch {
	case s.External:
		return fmt.Errorf("testserver: %s is external (%s): it cannot be stopped or started", s.Name, s.URL)
	case !s.dedicated:
		return fmt.Errorf("testserver: %s is shared by the whole test binary: use Dedicated to stop or start one", s.Name)
	}
	return nil
}

// Main runs the tests and stops every server this binary started, then removes their
// data. It installs no signal handler (tests may send themselves signals): a binary
// killed by a signal takes its servers with it through the parent-death signal, and
// its data directories are removed by the next test binary that starts a server.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	stopAll()
	if msg := skippedSummary(); msg != "" {
		fmt.Fprint(os.Stderr, msg)
	}
	os.Exit(code)
}

// --- shared servers --------------------------------------------------------------

type sharedServer struct {
	once sync.Once
	srv  *Server
	err  error
}

var sharedServers = map[string]*sharedServer{}

func init() {
	for _, k := range Kinds {
		sharedServers[k] = new(sharedServer)
	}
}

func shared(t testing.TB, kind string) *Server {
	t.Helper()
	sh := sharedServers[kind]
	sh.once.Do(func() {
		if v := os.Getenv(envFor[kind]); v != "" {
			sh.srv, sh.err = external(kind, v)
			return
		}
		if !mainCalled.Load() {
			sh.err = errors.New("testserver: shared servers need TestMain to call testserver.Main(m), which stops them")
			return
		}
		sh.srv, sh.err = startNew(kind, false)
	})
	if sh.err != nil {
		fail(t, kind, sh.err)
	}
	return sh.srv
}

var envFor = map[string]string{
	KindRedis:        EnvRedisURL,
	KindRedisCluster: EnvRedisCluster,
	KindPostgres:     EnvPostgresURL,
	KindMariaDB:      EnvMySQLURL,
	KindMemcached:    EnvMemcacheAddr,
	KindFerretDB:     EnvMongoURL,
	KindMinIO:        EnvS3URL,
}

// external returns the server an Env* variable names.
func external(kind, v string) (*Server, error) {
	s := &Server{Name: kind, URL: v, External: true}
	bad := func(err error) (*Server, error) {
		return nil, fmt.Errorf("testserver: %s=%q: %v", envFor[kind], v, err)
	}
	switch kind {
	case KindRedisCluster:
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				s.Addrs = append(s.Addrs, a)
			}
		}
		if len(s.Addrs) == 0 {
			return bad(errors.New("no address"))
		}
		s.URL = clusterURL(s.Addrs)
	case KindMemcached:
		s.Addrs = []string{v}
		s.URL = ""
	case KindMariaDB:
		i := strings.Index(v, "tcp(")
		j := strings.Index(v[max(i, 0):], ")")
		if i < 0 || j < 0 {
			return bad(errors.New("want a go-sql-driver DSN user:pass@tcp(host:port)/db"))
		}
		s.Addrs = []string{v[i+4 : i+j]}
	default:
		u, err := url.Parse(v)
		if err != nil {
			return bad(err)
		}
		if u.Host == "" {
			return bad(errors.New("no host"))
		}
		host := strings.Split(u.Host, ",")[0]
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, map[string]string{
				KindRedis: "6379", KindPostgres: "5432", KindFerretDB: "27017", KindMinIO: "80",
			}[kind])
		}
		s.Addrs = []string{host}
		if kind == KindMinIO && u.User != nil {
			s.AccessKey = u.User.Username()
			s.SecretKey, _ = u.User.Password()
			u.User = nil
			s.URL = u.String()
		}
	}
	s.Addr = s.Addrs[0]
	return s, nil
}

// clusterURL returns the go-redis ParseClusterURL form of a cluster's addresses.
func clusterURL(addrs []string) string {
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		if i == 0 {
			u += "?"
		} else {
			u += "&"
		}
		u += "addr=" + a
	}
	return u
}

// --- skip or fail ------------------------------------------------------------------

// missingError reports a server binary that is not installed.
type missingError struct{ binary string }

func (e *missingError) Error() string {
	return fmt.Sprintf("%s not found (searched PATH, the standard locations and %s)", e.binary, testBinDir())
}

var (
	skippedMu sync.Mutex
	skipped   = map[string]string{} // kind -> reason
)

// fail skips the test when err is a missing binary outside CI, and fails it otherwise.
func fail(t testing.TB, kind string, err error) {
	t.Helper()
	var me *missingError
	if errors.As(err, &me) && os.Getenv("CI") != "true" {
		msg := fmt.Sprintf("SKIPPING: %s; run scripts/install-test-deps", me.binary+" not found")
		skippedMu.Lock()
		skipped[kind] = msg
		skippedMu.Unlock()
		t.Skip(msg)
	}
	if errors.As(err, &me) {
		t.Fatalf("testserver: %s: %v (CI=true: a missing server fails; run scripts/install-test-deps)", kind, err)
	}
	t.Fatalf("testserver: %s: %v", kind, err)
}

func skippedSummary() string {
	skippedMu.Lock()
	defer skippedMu.Unlock()
	if len(skipped) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("testserver: ******** tests were SKIPPED because servers are missing ********\n")
	for _, k := range Kinds {
		if msg, ok := skipped[k]; ok {
			fmt.Fprintf(&b, "testserver:   %s: %s\n", k, msg)
		}
	}
	return b.String()
}

// Binary returns the path of the first of names found where the servers are looked
// for (PATH, the standard directories, scripts/install-test-deps's directory), for a
// test that runs a server mode the harness does not manage (Redis Sentinel). A missing
// binary skips the test outside CI and fails it under CI=true, as for every server.
func Binary(t testing.TB, kind string, names ...string) string {
	t.Helper()
	bin, err := findBinary(names...)
	if err != nil {
		fail(t, kind, err)
	}
	return bin
}
