package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MinIO credentials of the servers this package starts.
const (
	minioAccessKey = "cachier-test"
	minioSecretKey = "cachier-test-secret"
)

// newServer prepares a server of the given kind (binaries found, ports chosen, data
// directory initialized) without starting it, and registers it for Main.
func newServer(kind string, dedicated bool) (*Server, error) {
	setup, ok := setups[kind]
	if !ok {
		return nil, fmt.Errorf("testserver: unknown kind %q (want one of %s)", kind, strings.Join(Kinds, ", "))
	}
	root, err := rootDir()
	if err != nil {
		return nil, err
	}
	prefix := kind + "-"
	if dedicated {
		prefix = kind + "-dedicated-"
	}
	dir, err := os.MkdirTemp(root, prefix)
	if err != nil {
		return nil, err
	}
	_ = os.Chmod(dir, 0o755)
	s := &Server{Name: kind, dedicated: dedicated, dir: dir}
	register(s)
	if err := setup(s); err != nil {
		s.discard()
		return nil, err
	}
	for _, n := range s.nodes {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
		s.Addrs = append(s.Addrs, addr)
		if n.dir == "" {
			n.dir = s.dir
		}
		if n.logPath == "" {
			n.logPath = filepath.Join(s.dir, filepath.Base(n.path)+"-"+strconv.Itoa(n.port)+".log")
		}
	}
	s.Addr = s.Addrs[0]
	return s, nil
}

// start starts every node that is not running, waits until each answers, and runs the
// kind's after-start step (cluster creation, database creation).
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	for _, n := range s.nodes {
		if err := n.launch(); err != nil {
			return err
		}
	}
	// Nodes start in parallel (a cluster has three).
	errs := make([]error, len(s.nodes))
	var wg sync.WaitGroup
	for i, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.waitReady(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// A server that lost its port to another one exits, while the other answers.
	for _, n := range s.nodes {
		if !n.running() {
			return fmt.Errorf("%s exited after answering (address already in use?)\n%s", n.name, n.tail())
		}
	}
	first := !s.started
	if s.afterStart != nil {
		if err := s.afterStart(s, first); err != nil {
			return fmt.Errorf("%w\n%s", err, s.Log())
		}
	}
	s.started = true
	return nil
}

// stopLocked stops every node; s.mu is held.
func (s *Server) stopLocked(grace time.Duration) error {
	errs := make([]error, len(s.nodes))
	var wg sync.WaitGroup
	for i, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.stop(grace)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// discard stops the server and removes its data directory.
func (s *Server) discard() {
	if s.External {
		return
	}
	s.mu.Lock()
	err := s.stopLocked(stopGrace)
	s.mu.Unlock()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testserver: stop %s: %v\n", s.Name, err)
	}
	_ = os.RemoveAll(s.dir)
	unregister(s)
}

// setups prepare each kind: find the binaries, choose ports, initialize data, and
// describe the nodes.
var setups = map[string]func(s *Server) error{
	KindRedis:        setupRedis,
	KindRedisCluster: setupRedisCluster,
	KindPostgres:     setupPostgres,
	KindMariaDB:      setupMariaDB,
	KindMemcached:    setupMemcached,
	KindFerretDB:     setupFerretDB,
	KindMinIO:        setupMinIO,
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// --- redis -------------------------------------------------------------------------

// redisNode describes one redis-server. A dedicated server saves its data when
// stopped, so it survives Stop and Start; a shared one never writes to disk.
func redisNode(s *Server, bin string, port int, dir string, extra ...string) *node {
	save := ""
	if s.dedicated {
		save = "86400 1000000" // save points exist, so a graceful shutdown saves
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--daemonize", "no", "--dir", dir, "--save", save, "--appendonly", "no",
		"--logfile", "", "--databases", "16",
	}
	addr := loopback(port)
	return &node{
		name: "redis-server " + addr, port: port, path: bin, dir: dir,
		args:  append(args, extra...),
		ready: func(ctx context.Context) error { return redisPing(ctx, addr) },
	}
}

func setupRedis(s *Server) error {
	bin, err := findBinary("redis-server")
	if err != nil {
		return err
	}
	port, err := freePort(0)
	if err != nil {
		return err
	}
	s.nodes = []*node{redisNode(s, bin, port, s.dir)}
	s.URL = "redis://" + loopback(port) + "/0"
	return nil
}

func setupRedisCluster(s *Server) error {
	bin, err := findBinary("redis-server")
	if err != nil {
		return err
	}
	cli, err := sibling(bin, "redis-cli")
	if err != nil {
		return err
	}
	var addrs []string
	for i := range 3 {
		port, err := freePort(10000) // the cluster bus listens on port+10000
		if err != nil {
			return err
		}
		dir := filepath.Join(s.dir, "node"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		s.nodes = append(s.nodes, redisNode(s, bin, port, dir,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000", "--cluster-require-full-coverage", "yes"))
		addrs = append(addrs, loopback(port))
	}
	s.URL = clusterURL(addrs)
	s.afterStart = func(s *Server, first bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
		defer cancel()
		if first {
			args := append([]string{"--cluster", "create"}, addrs...)
			args = append(args, "--cluster-replicas", "0", "--cluster-yes")
			if err := runCmd(ctx, filepath.Join(s.dir, "cluster-create.log"), nil, s.dir, cli, args...); err != nil {
				return err
			}
		}
		return waitClusterOK(ctx, addrs)
	}
	return nil
}

// waitClusterOK waits until every node reports cluster_state:ok and sees every other.
func waitClusterOK(ctx context.Context, addrs []string) error {
	want := fmt.Sprintf("cluster_known_nodes:%d", len(addrs))
	for _, a := range addrs {
		for {
			info, err := redisCmd(ctx, a, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, want) &&
				strings.Contains(info, "cluster_slots_assigned:16384") {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("redis cluster node %s not ok: %v\n%s", a, err, info)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// --- PostgreSQL --------------------------------------------------------------------

func setupPostgres(s *Server) error {
	bin, err := findBinary("postgres")
	if err != nil {
		return err
	}
	initdb, err := sibling(bin, "initdb")
	if err != nil {
		return err
	}
	port, err := freePort(0)
	if err != nil {
		return err
	}
	// PostgreSQL refuses to run as root: run it as the postgres user, owning its dir.
	var cred *credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root and there is no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return err
		}
	}
	data := filepath.Join(s.dir, "data")
	logPath := filepath.Join(s.dir, "postgres.log")
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	initArgs := []string{"-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"}
	err = initData(data, initdb, cred, func() error {
		return runCmd(ctx, logPath, cred, s.dir, initdb, append([]string{"-D", data}, initArgs...)...)
	}, initArgs...)
	if err != nil {
		return err
	}
	s.nodes = []*node{{
		name: "postgres " + loopback(port), port: port, path: bin, cred: cred, logPath: logPath,
		stopSig: syscall.SIGINT, // fast shutdown: SIGTERM would wait for clients
		args: []string{
			"-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + s.dir,
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=300", "-c", "shared_buffers=64MB",
		},
		env:   []string{"LC_ALL=C"},
		ready: func(ctx context.Context) error { return pgConnect(ctx, loopback(port), "postgres", "postgres") },
	}}
	s.URL = "postgres://postgres@" + loopback(port) + "/postgres?sslmode=disable"
	return nil
}

// --- MariaDB -----------------------------------------------------------------------

func setupMariaDB(s *Server) error {
	bin, err := findBinary("mariadbd", "mysqld")
	if err != nil {
		return err
	}
	install, err := findBinary("mariadb-install-db", "mysql_install_db")
	if err != nil {
		return err
	}
	port, err := freePort(0)
	if err != nil {
		return err
	}
	data := filepath.Join(s.dir, "data")
	logPath := filepath.Join(s.dir, "mariadbd.log")
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"} // otherwise mariadbd refuses to run as root
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	initArgs := append([]string{"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}, asRoot...)
	err = initData(data, install, nil, func() error {
		args := append([]string{"--no-defaults", "--datadir=" + data}, initArgs...)
		return runCmd(ctx, logPath, nil, s.dir, install, args...)
	}, initArgs...)
	if err != nil {
		return err
	}
	initFile := filepath.Join(s.dir, "init.sql")
	if err := os.WriteFile(initFile, []byte("CREATE DATABASE IF NOT EXISTS test;\n"), 0o644); err != nil {
		return err
	}
	addr := loopback(port)
	s.nodes = []*node{{
		name: "mariadbd " + addr, port: port, path: bin, logPath: logPath,
		args: append([]string{
			"--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port),
			"--socket=" + filepath.Join(s.dir, "mysqld.sock"), "--bind-address=127.0.0.1",
			"--pid-file=" + filepath.Join(s.dir, "mariadbd.pid"), "--init-file=" + initFile,
			"--skip-name-resolve", "--skip-log-bin", "--max-connections=500",
			"--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0",
			"--innodb-doublewrite=0", "--sync-frm=0", "--skip-performance-schema",
		}, asRoot...),
		ready: func(ctx context.Context) error { return mysqlHandshake(ctx, addr) },
	}}
	s.URL = "root@tcp(" + addr + ")/test"
	return nil
}

// --- memcached ---------------------------------------------------------------------

func setupMemcached(s *Server) error {
	bin, err := findBinary("memcached")
	if err != nil {
		return err
	}
	port, err := freePort(0)
	if err != nil {
		return err
	}
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64", "-c", "1024"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses root without -u
	}
	addr := loopback(port)
	s.nodes = []*node{{
		name: "memcached " + addr, port: port, path: bin, args: args,
		ready: func(ctx context.Context) error { return memcachedVersion(ctx, addr) },
	}}
	return nil
}

// --- FerretDB ----------------------------------------------------------------------

func setupFerretDB(s *Server) error {
	bin, err := findBinary("ferretdb")
	if err != nil {
		return err
	}
	port, err := freePort(0)
	if err != nil {
		return err
	}
	data := filepath.Join(s.dir, "data")
	state := filepath.Join(s.dir, "state")
	for _, d := range []string{data, state} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	addr := loopback(port)
	s.nodes = []*node{{
		name: "ferretdb " + addr, port: port, path: bin,
		args: []string{
			"--handler=sqlite", "--sqlite-url=file:" + data + "/", "--listen-addr=" + addr,
			"--debug-addr=-", "--state-dir=" + state, "--telemetry=disable", "--log-level=warn",
		},
		ready:   func(ctx context.Context) error { return mongoPing(ctx, addr) },
		prepare: func() error { return dropUnfinishedFerretDBs(data) },
	}}
	s.URL = "mongodb://" + addr + "/"
	return nil
}

// dropUnfinishedFerretDBs removes the SQLite files of FerretDB databases whose
// metadata table was never created: FerretDB makes a database's file, then its
// _ferretdb_collections table, and a SIGKILL in between leaves a file it refuses to
// start on ("no such table: _ferretdb_collections"; CI saw it in
// TestTortureServerKilled/ferretdb). Such a database has no collection registered, so
// nothing is lost. A file whose bytes (or its write-ahead log's) name the table is
// kept.
func dropUnfinishedFerretDBs(data string) error {
	files, err := filepath.Glob(filepath.Join(data, "*.sqlite"))
	if err != nil {
		return err
	}
	for _, f := range files {
		named := false
		for _, p := range []string{f, f + "-wal"} {
			b, err := os.ReadFile(p)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			named = named || bytes.Contains(b, []byte("_ferretdb_collections"))
		}
		if !named {
			for _, p := range []string{f, f + "-wal", f + "-shm"} {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
		}
	}
	return nil
}

// --- MinIO -------------------------------------------------------------------------

func setupMinIO(s *Server) error {
	bin, err := findBinary("minio")
	if err != nil {
		return err
	}
	port, err := freePort(0)
	if err != nil {
		return err
	}
	console, err := freePort(0)
	if err != nil {
		return err
	}
	addr := loopback(port)
	s.nodes = []*node{{
		name: "minio " + addr, port: port, path: bin,
		args: []string{
			"server", filepath.Join(s.dir, "data"), "--address", addr,
			"--console-address", loopback(console), "--certs-dir", filepath.Join(s.dir, "certs"),
		},
		env: []string{
			"MINIO_ROOT_USER=" + minioAccessKey, "MINIO_ROOT_PASSWORD=" + minioSecretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off",
		},
		ready: func(ctx context.Context) error { return httpOK(ctx, "http://"+addr+"/minio/health/ready") },
	}}
	s.URL = "http://" + addr
	s.AccessKey, s.SecretKey = minioAccessKey, minioSecretKey
	return nil
}
