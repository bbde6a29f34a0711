// Package testserver starts throwaway servers for tests: redis-server (single and a
// 3-master cluster), PostgreSQL, MariaDB, memcached, FerretDB (MongoDB wire protocol)
// and MinIO (S3), on free loopback ports, from the binaries on the machine, and stops
// them by their own PID.
//
// A test may use a server the machine already runs only through an explicit URL
// variable (see the Env* constants); it must then touch only data it created.
//
// When a binary is missing the test is skipped with a loud message; under CI=true it
// fails instead, because a skipped store test proves nothing.
//
// Shared servers are started at most once per test binary and stopped by Main, which
// the package's TestMain must call:
//
//	func TestMain(m *testing.M) { testserver.Main(m) }
package testserver

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

// Server is one running server.
//
//	Redis:     URL redis://127.0.0.1:PORT/0
//	Postgres:  URL postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
//	MariaDB:   URL root@tcp(127.0.0.1:PORT)/test (a go-sql-driver DSN)
//	Memcached: Addr 127.0.0.1:PORT
//	FerretDB:  URL mongodb://127.0.0.1:PORT/
//	MinIO:     URL http://127.0.0.1:PORT, AccessKey, SecretKey
type Server struct {
	Name      string   // "redis", "postgres", ...
	Addr      string   // host:port of the first node
	Addrs     []string // every node (a cluster has several)
	URL       string
	AccessKey string // MinIO only
	SecretKey string // MinIO only
	External  bool   // came from an Env* variable: never stopped or restarted

	// Implementation state (process handles, data dir) lives in unexported fields.
}

// Shared servers, started once per test binary. Each skips or fails the test when the
// server cannot be had.
//
//	func Redis(t testing.TB) *Server
//	func RedisCluster(t testing.TB) *Server
//	func Postgres(t testing.TB) *Server
//	func MariaDB(t testing.TB) *Server
//	func Memcached(t testing.TB) *Server
//	func FerretDB(t testing.TB) *Server
//	func MinIO(t testing.TB) *Server
//
// Dedicated servers, for tests that stop and restart them (outages). The server is
// stopped when the test ends.
//
//	func Dedicated(t testing.TB, kind string) *Server
//	func (s *Server) Stop(t testing.TB)    // SIGTERM by PID, wait; data dir kept
//	func (s *Server) Start(t testing.TB)   // start again on the same port and data dir
//
// Main runs the tests and stops every server this binary started.
//
//	func Main(m *testing.M)
