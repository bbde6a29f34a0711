package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// mainCalled reports whether Main runs the tests, so shared servers will be stopped.
var mainCalled atomic.Bool

// node is one server process: its command line, log and readiness probe.
type node struct {
	name    string // for messages: "redis-server 127.0.0.1:PORT"
	port    int
	path    string
	args    []string
	env     []string
	dir     string         // working directory
	cred    *credential    // run as another user (PostgreSQL refuses root)
	stopSig syscall.Signal // graceful stop signal (SIGTERM unless set)
	logPath string
	ready   func(ctx context.Context) error // a real protocol check
	prepare func() error                    // if set, run before every start (a restart too)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
}

// running reports whether the node's process runs.
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// launch starts the process, with its output appended to the log.
func (n *node) launch() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			return nil // already running
		}
	}
	if n.prepare != nil {
		if err := n.prepare(); err != nil {
			return fmt.Errorf("prepare %s: %w", n.name, err)
		}
	}
	logf, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "\n=== testserver: %s %s (%s)\n", n.path, strings.Join(n.args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(n.path, n.args...)
	cmd.Dir = n.dir
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdin = nil
	cmd.Stdout = logf // an *os.File: no copying goroutine
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(n.cred)
	if err := spawn(cmd); err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	track(cmd.Process.Pid, true)
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		track(cmd.Process.Pid, false)
		close(done)
	}()
	n.cmd, n.done = cmd, done
	return nil
}

// waitReady polls the node's probe until it answers, the process exits, or ctx ends.
func (n *node) waitReady(ctx context.Context) error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s is not running", n.name)
	}
	delay := 20 * time.Millisecond
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = n.ready(pctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited during start (%v); last probe: %v\n%s",
				n.name, cmd.ProcessState, last, n.tail())
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer within %v: %v\n%s", n.name, StartTimeout, last, n.tail())
		case <-time.After(delay):
		}
		delay = min(delay*3/2, 250*time.Millisecond)
	}
}

// stop sends the node's stop signal to its PID, waits up to grace, then SIGKILLs its
// process group. A zero grace kills at once.
func (n *node) stop(grace time.Duration) error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	pid := cmd.Process.Pid
	if grace > 0 {
		sig := n.stopSig
		if sig == 0 {
			sig = syscall.SIGTERM
		}
		_ = kill(pid, sig)
		select {
		case <-done:
			killGroup(pid) // stray children, if any
			return nil
		case <-time.After(grace):
		}
	}
	killGroup(pid)
	_ = kill(pid, syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", n.name, pid)
	}
}

func (n *node) tail() string { return "--- log tail " + n.logPath + ":\n" + logTail(n.logPath, 30) }

// logTail returns the last lines of a log file.
func logTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)\n", err)
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	b = bytes.TrimRight(b, "\n")
	parts := bytes.Split(b, []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return string(bytes.Join(parts, []byte("\n"))) + "\n"
}

// --- spawning ----------------------------------------------------------------------

// The parent-death signal is delivered when the OS thread that forked the child exits,
// not the process: every server is therefore forked from one goroutine locked to its
// thread for the life of the binary.
var (
	spawnOnce sync.Once
	spawnReqs = make(chan spawnReq)
)

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the binary
			for r := range spawnReqs {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd, make(chan error, 1)}
	spawnReqs <- r
	return <-r.errc
}

// --- the registry of everything this binary started ----------------------------------

var reg struct {
	sync.Mutex
	servers []*Server
	pids    map[int]bool
	root    string
}

func track(pid int, alive bool) {
	reg.Lock()
	defer reg.Unlock()
	if reg.pids == nil {
		reg.pids = map[int]bool{}
	}
	if alive {
		reg.pids[pid] = true
	} else {
		delete(reg.pids, pid)
	}
}

func register(s *Server) {
	reg.Lock()
	reg.servers = append(reg.servers, s)
	reg.Unlock()
}

func unregister(s *Server) {
	reg.Lock()
	defer reg.Unlock()
	for i, x := range reg.servers {
		if x == s {
			reg.servers = append(reg.servers[:i], reg.servers[i+1:]...)
			return
		}
	}
}

// stopAll stops every server this binary started, in parallel, and removes the data.
func stopAll() {
	reg.Lock()
	servers := append([]*Server(nil), reg.servers...)
	reg.Unlock()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.discard()
		}()
	}
	wg.Wait()
	reg.Lock()
	for pid := range reg.pids { // anything left: should not happen
		killGroup(pid)
		_ = kill(pid, syscall.SIGKILL)
	}
	root := reg.root
	reg.Unlock()
	if root != "" {
		_ = os.RemoveAll(root)
	}
}

// rootDir returns this binary's temporary directory, creating it and removing the
// ones left by binaries that died on the first call.
func rootDir() (string, error) {
	reg.Lock()
	defer reg.Unlock()
	if reg.root != "" {
		return reg.root, nil
	}
	removeStaleRoots()
	dir, err := os.MkdirTemp("", rootPrefix)
	if err != nil {
		return "", err
	}
	// Servers running as another user (postgres) must traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return "", err
	}
	reg.root = dir
	return dir, nil
}

const (
	rootPrefix = "cachier-testserver-"
	ownerFile  = "owner.pid"
)

// removeStaleRoots removes the temporary directories of test binaries that are gone.
func removeStaleRoots() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), rootPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// --- ports -------------------------------------------------------------------------

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // handed out by this binary
)

// freePort returns a loopback TCP port nobody listens on. With busOffset > 0 the port
// plus busOffset must be free too (the redis cluster bus).
//
// Ports come from below the kernel's ephemeral range when there is room, so that the
// outgoing connections of the tests (which take ephemeral ports) cannot take a port
// between its choice and the server binding it.
func freePort(busOffset int) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := 10000, ephemeralLow()-1-busOffset
	for range 200 {
		p := 0
		if hi-lo >= 2000 {
			p = lo + rand.IntN(hi-lo+1)
		}
		l, err := net.Listen("tcp", loopback(p))
		if err != nil {
			if p == 0 {
				return 0, err
			}
			continue
		}
		p = l.Addr().(*net.TCPAddr).Port
		var l2 net.Listener
		ok := !ports[p]
		if ok && busOffset > 0 {
			ok = p+busOffset <= 65535 && !ports[p+busOffset]
			if ok {
				l2, err = net.Listen("tcp", loopback(p+busOffset))
				ok = err == nil
			}
		}
		l.Close()
		if l2 != nil {
			l2.Close()
		}
		if ok {
			ports[p] = true
			if busOffset > 0 {
				ports[p+busOffset] = true
			}
			return p, nil
		}
	}
	return 0, errors.New("no free port found")
}

// ephemeralLow returns the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768 // Linux's default; BSDs and macOS start higher
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return lo
}

// --- binaries ----------------------------------------------------------------------

// testBinDir returns the directory scripts/install-test-deps builds servers into.
func testBinDir() string {
	if d := os.Getenv(EnvTestBin); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "cachier-testbin")
	}
	return filepath.Join(home, ".cache", "cachier-testbin")
}

// findBinary looks for the first of names on PATH, then in the standard locations,
// then in the testbin directory.
func findBinary(names ...string) (string, error) {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	dirs := []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/opt/homebrew/bin", "/opt/homebrew/sbin"}
	// PostgreSQL keeps its server binaries out of PATH on Debian: newest version first.
	pg, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(pg, func(i, j int) bool { return pgVersion(pg[i]) > pgVersion(pg[j]) })
	dirs = append(dirs, pg...)
	dirs = append(dirs, "/usr/local/pgsql/bin", testBinDir())
	for _, name := range names {
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", &missingError{binary: names[0]}
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// sibling returns the binary name next to path (initdb next to postgres), falling back
// to findBinary.
func sibling(path, name string) (string, error) {
	p := filepath.Join(filepath.Dir(path), name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return findBinary(name)
}

// runCmd runs a set-up command (initdb, mariadb-install-db) to completion, with its
// output in the log.
func runCmd(ctx context.Context, logPath string, cred *credential, dir, path string, args ...string) error {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== testserver: %s %s\n", path, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(cred)
	cmd.Cancel = func() error { killGroup(cmd.Process.Pid); return nil } // initdb's children too
	cmd.WaitDelay = 5 * time.Second
	if err := spawn(cmd); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w\n--- log tail %s:\n%s", filepath.Base(path), err, logPath, logTail(logPath, 30))
	}
	return nil
}
