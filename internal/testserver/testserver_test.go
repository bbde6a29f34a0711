package testserver_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/bradfitz/gomemcache/memcache"
	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/internal/testserver"
)

func TestMain(m *testing.M) {
	testserver.Main(m)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// kinds lists every server kind with its shared getter and a check through the driver
// the stores use, with the URL the harness documents.
var kinds = []struct {
	kind  string
	get   func(testing.TB) *testserver.Server
	check func(t *testing.T, s *testserver.Server)
}{
	{testserver.KindRedis, testserver.Redis, checkRedis},
	{testserver.KindRedisCluster, testserver.RedisCluster, checkRedisCluster},
	{testserver.KindPostgres, testserver.Postgres, checkPostgres},
	{testserver.KindMariaDB, testserver.MariaDB, checkMariaDB},
	{testserver.KindMemcached, testserver.Memcached, checkMemcached},
	{testserver.KindFerretDB, testserver.FerretDB, checkFerretDB},
	{testserver.KindMinIO, testserver.MinIO, checkMinIO},
}

// TestShared starts every shared server (in parallel) and talks to it through the
// driver the stores use, with the URL the harness documents.
func TestShared(t *testing.T) {
	for _, tc := range kinds {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s := tc.get(t)
			t.Logf("%s ready at %s (%s) in %v", s.Name, s.Addr, s.URL, time.Since(start).Round(time.Millisecond))
			if s.Name != tc.kind || s.Addr == "" || len(s.Addrs) == 0 || s.Addrs[0] != s.Addr {
				t.Fatalf("bad server description: %+v", s)
			}
			if again := tc.get(t); again != s {
				t.Fatalf("second call started another server")
			}
			tc.check(t, s)
		})
	}
}

func checkRedis(t *testing.T, s *testserver.Server) {
	opt, err := redis.ParseURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Set(ctx(t), "testserver:k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx(t), "testserver:k").Result(); err != nil || v != "v" {
		t.Fatalf("get = %q, %v", v, err)
	}
}

func checkRedisCluster(t *testing.T, s *testserver.Server) {
	if len(s.Addrs) != 3 {
		t.Fatalf("cluster has %d nodes, want 3", len(s.Addrs))
	}
	opt, err := redis.ParseClusterURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(opt.Addrs) != 3 {
		t.Fatalf("cluster URL %s names %d nodes", s.URL, len(opt.Addrs))
	}
	rdb := redis.NewClusterClient(opt)
	defer rdb.Close()
	// Keys spread over every master.
	for i := range 30 {
		k := fmt.Sprintf("testserver:%d", i)
		if err := rdb.Set(ctx(t), k, i, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := rdb.Get(ctx(t), k).Int(); err != nil || v != i {
			t.Fatalf("get %s = %d, %v", k, v, err)
		}
	}
	var masters atomic.Int32 // ForEachMaster runs fn concurrently
	err = rdb.ForEachMaster(ctx(t), func(ctx context.Context, c *redis.Client) error {
		masters.Add(1)
		return c.Ping(ctx).Err()
	})
	if err != nil || masters.Load() != 3 {
		t.Fatalf("masters = %d, %v", masters.Load(), err)
	}
}

func checkPostgres(t *testing.T, s *testserver.Server) {
	conn, err := pgx.Connect(ctx(t), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx(t), "SELECT 40 + 2").Scan(&n); err != nil || n != 42 {
		t.Fatalf("select = %d, %v", n, err)
	}
	if _, err := conn.Exec(ctx(t), "CREATE TABLE IF NOT EXISTS testserver_t (k text PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
}

func checkMariaDB(t *testing.T, s *testserver.Server) {
	db, err := sql.Open("mysql", s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	if err := db.QueryRowContext(ctx(t), "SELECT DATABASE()").Scan(&name); err != nil || name != "test" {
		t.Fatalf("database = %q, %v", name, err)
	}
	if _, err := db.ExecContext(ctx(t), "CREATE TABLE IF NOT EXISTS testserver_t (k VARCHAR(100) PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
}

func checkMemcached(t *testing.T, s *testserver.Server) {
	mc := memcache.New(s.Addr)
	defer mc.Close()
	if err := mc.Set(&memcache.Item{Key: "testserver", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if it, err := mc.Get("testserver"); err != nil || string(it.Value) != "v" {
		t.Fatalf("get = %v, %v", it, err)
	}
}

func checkFerretDB(t *testing.T, s *testserver.Server) {
	if !strings.HasPrefix(s.URL, "mongodb://"+s.Addr) {
		t.Fatalf("URL %s does not name %s", s.URL, s.Addr)
	}
	if err := testserver.MongoPing(ctx(t), s.Addr); err != nil {
		t.Fatal(err)
	}
}

func checkMinIO(t *testing.T, s *testserver.Server) {
	if s.AccessKey == "" || s.SecretKey == "" {
		t.Fatal("no credentials")
	}
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(s.URL),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	bucket := fmt.Sprintf("testserver-%d", time.Now().UnixNano())
	if _, err := client.CreateBucket(ctx(t), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	out, err := client.ListBuckets(ctx(t), &s3.ListBucketsInput{})
	if err != nil || len(out.Buckets) == 0 {
		t.Fatalf("list buckets = %v, %v", out, err)
	}
}

// TestDedicatedStopStart takes a dedicated redis down and up again: clients fail while it
// is down, and the data survives a graceful stop.
func TestDedicatedStopStart(t *testing.T) {
	t.Parallel()
	s := testserver.Dedicated(t, testserver.KindRedis)
	if shared := testserver.Redis(t); shared.Addr == s.Addr {
		t.Fatal("dedicated server is the shared one")
	}
	opt, _ := redis.ParseURL(s.URL)
	opt.MaxRetries = -1
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	s.Stop(t)
	if s.Running() {
		t.Fatal("running after Stop")
	}
	if err := rdb.Ping(ctx(t)).Err(); err == nil {
		t.Fatal("ping succeeded while stopped")
	}
	s.Start(t)
	if !s.Running() {
		t.Fatal("not running after Start")
	}
	if v, err := rdb.Get(ctx(t), "k").Result(); err != nil || v != "v" {
		t.Fatalf("after restart get = %q, %v", v, err)
	}

	s.Kill(t)
	if err := rdb.Ping(ctx(t)).Err(); err == nil {
		t.Fatal("ping succeeded while killed")
	}
	s.Start(t)
	if err := rdb.Ping(ctx(t)).Err(); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
}

// TestDedicatedEveryKind stops, kills and restarts a dedicated server of every kind.
// It costs a minute of CPU: it runs only with CACHIER_TESTSERVER_ALL=1.
func TestDedicatedEveryKind(t *testing.T) {
	if os.Getenv("CACHIER_TESTSERVER_ALL") != "1" {
		t.Skip("set CACHIER_TESTSERVER_ALL=1 to run")
	}
	for _, tc := range kinds {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s := testserver.Dedicated(t, tc.kind)
			t.Logf("%s started in %v", tc.kind, time.Since(start).Round(time.Millisecond))
			tc.check(t, s)
			start = time.Now()
			s.Stop(t)
			t.Logf("%s stopped in %v", tc.kind, time.Since(start).Round(time.Millisecond))
			if s.Running() {
				t.Fatal("running after Stop")
			}
			start = time.Now()
			s.Start(t)
			t.Logf("%s restarted in %v", tc.kind, time.Since(start).Round(time.Millisecond))
			tc.check(t, s)
			s.Kill(t)
			start = time.Now()
			s.Start(t)
			t.Logf("%s restarted after SIGKILL in %v", tc.kind, time.Since(start).Round(time.Millisecond))
			tc.check(t, s)
		})
	}
}

// TestSharedCannotStop: only dedicated servers may be stopped.
func TestSharedCannotStop(t *testing.T) {
	s := testserver.Redis(t)
	ft := &fakeT{TB: t}
	func() {
		defer func() { _ = recover() }()
		s.Stop(ft)
	}()
	if !ft.failed {
		t.Fatal("Stop on a shared server did not fail")
	}
	if !s.Running() {
		t.Fatal("shared server stopped")
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatal(args ...any) {
	f.failed = true
	panic("fatal")
}

// --- the servers of a test binary that dies -----------------------------------------

// TestNoServerLeftBehind re-executes this test binary, which starts a redis-server and
// then either ends normally (Main stops the server and removes its data) or dies by
// SIGKILL (the parent-death signal takes the server with it).
func TestNoServerLeftBehind(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
			t.Skip("needs redis-server")
		}
	}
	for _, mode := range []string{"main", "kill"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.CommandContext(ctx(t), os.Args[0], "-test.run=^TestHelperServer$", "-test.v")
			cmd.Env = append(os.Environ(), "CACHIER_TESTSERVER_CHILD="+mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var pid int
			var dir string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "SERVER" {
					pid, _ = strconv.Atoi(f[1])
					dir = f[2]
				}
			}
			err = cmd.Wait()
			if pid == 0 {
				t.Fatalf("child printed no server (%v)", err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for testserver.Kill(pid, 0) == nil || isZombie(pid) {
				if time.Now().After(deadline) {
					_ = testserver.Kill(pid, syscall.SIGKILL)
					t.Fatalf("redis-server %d outlived its test binary (%s)", pid, mode)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if mode == "main" {
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("data dir %s left behind: %v", dir, err)
				}
			}
		})
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && strings.Contains(string(b), ") Z ")
}

// TestHelperServer is the child's side of TestNoServerLeftBehind.
func TestHelperServer(t *testing.T) {
	mode := os.Getenv("CACHIER_TESTSERVER_CHILD")
	if mode == "" {
		return // only the child of TestNoServerLeftBehind does anything here
	}
	s := testserver.Redis(t)
	pid, dir := serverPID(t, s)
	fmt.Printf("SERVER %d %s\n", pid, dir)
	os.Stdout.Sync()
	if mode == "kill" {
		_ = testserver.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	}
}

// serverPID finds the redis-server listening on s.Addr through INFO.
func serverPID(t *testing.T, s *testserver.Server) (int, string) {
	opt, _ := redis.ParseURL(s.URL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	info, err := rdb.Info(ctx(t), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := rdb.ConfigGet(ctx(t), "dir").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid, dir["dir"]
		}
	}
	t.Fatal("no process_id in INFO")
	return 0, ""
}
