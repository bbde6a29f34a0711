package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// defaultRunNamespace is the namespace of "cachier run" entries unless --name says
// otherwise.
const defaultRunNamespace = "cachier-run"

var runCmd = &command{
	name:    "run",
	summary: "run a command through the cache, or replay its recorded output",
	usage: `Usage: cachier run [flags] [--] CMD [ARGS...]

Runs CMD through the cache. The first run executes it, streaming its output live,
and records its stdout, stderr and exit status; the next identical run replays them
byte for byte, without executing CMD, and exits with the recorded status. Identical
runs started at once, on one machine or (with a shared store) many, execute CMD once;
the others wait and replay. Flags come before CMD: everything from CMD on is CMD's.
Put -- before CMD when CMD starts with -.

The key is the argument list (not the path CMD resolves to); --key-dir adds the
working directory, --key-env the named environment variables, --key-file the
contents of files, and --stdin the standard input. WITHOUT --stdin, STANDARD INPUT
IS NOT PART OF THE KEY: "echo a | cachier run -- tr a-z A-Z" and "echo b | ..." share
one entry. A CMD killed by a signal, or one that could not start, is never recorded;
with --discard-failures, no non-zero exit is either.

When the store cannot be reached, CMD runs without the cache: one warning goes to
stderr and cachier exits with CMD's status. Recorded runs not re-recorded for
--prune-after (default 30d) are deleted, and the oldest go first when the namespace
is over --max-size (default 1G); --prune-after 0 turns pruning off.

Flags also take their defaults from the environment: CACHIER_STORE, CACHIER_NAME (or
CACHIER_SCOPE), CACHIER_STALE_AFTER (or CACHIER_TTL), CACHIER_WAIT_TIMEOUT,
CACHIER_DISCARD_FAILURES, CACHIER_KEY_DIR, CACHIER_PRUNE_AFTER, CACHIER_MAX_SIZE and
CACHIER_VERBOSE; a flag on the command line wins.
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		c := &runConfig{}
		c.store = storeFlag(fs)
		fs.StringVar(&c.name, "name", defaultRunNamespace, "the `namespace` of the entries")
		fs.Var((*durationValue)(&c.staleAfter), "stale-after", "a recorded run older than `D` is stale and executes again (default: never stale)")
		fs.Var((*durationValue)(&c.maxAge), "max-age", "like --stale-after `D` for this run only (the smaller wins); zero or negative: always execute")
		fs.Var((*durationValue)(&c.waitTimeout), "wait-timeout", "execute CMD after waiting `D` for an identical run (default: wait for it to finish)")
		fs.BoolVar(&c.nextTime, "next-time", false, "replay a stale run at once and refresh it in a background process (needs --stale-after or --max-age)")
		fs.BoolVar(&c.force, "force", false, "execute CMD and record it even if a fresh run is recorded")
		fs.BoolVar(&c.skip, "skip", false, "execute CMD without the cache: read and record nothing")
		fs.BoolVar(&c.discardFailures, "discard-failures", false, "do not record a run that exits non-zero")
		fs.BoolVar(&c.keyDir, "key-dir", false, "make the working directory part of the key")
		fs.Var((*envNames)(&c.keyEnv), "key-env", "make environment variable `NAME` part of the key (repeatable)")
		fs.BoolVar(&c.verbose, "verbose", false, "log what cachier decides (hit, miss, wait, store) on stderr")
		fs.BoolVar(&c.stdin, "stdin", false, "read standard input, make it part of the key, and pass it to CMD")
		fs.Var((*globList)(&c.keyFiles), "key-file", "make the contents of the files matching `GLOB` part of the key (repeatable; ** matches any directories)")
		fs.BoolVar(&c.warm, "warm", false, "execute CMD in the background and record it, printing nothing (refresh the entry ahead of use)")
		c.pruneAfter = defaultPruneAfter
		fs.Var((*durationValue)(&c.pruneAfter), "prune-after", "delete recorded runs of the namespace not re-recorded for `D` (0: never prune)")
		c.maxSize = defaultMaxSize
		fs.Var((*sizeValue)(&c.maxSize), "max-size", "delete the oldest recorded runs of the namespace beyond `SIZE` in all, such as 500M or 2G (0: no limit)")
		return func(args []string) (runner, error) {
			fs.Visit(func(f *flag.Flag) {
				if f.Name == "max-age" {
					c.maxAgeSet = true
				}
			})
			c.argv = args
			if err := c.validate(); err != nil {
				return nil, usageError(self, "run: %v", err)
			}
			return c, nil
		}
	},
}

// envNames is the repeatable --key-env flag.
type envNames []string

func (e *envNames) String() string { return strings.Join(*e, ",") }

func (e *envNames) Set(name string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("%s is not an environment variable name", quote(name))
	}
	*e = append(*e, name)
	return nil
}

// runConfig is a parsed "cachier run" command line.
type runConfig struct {
	store           *string
	name            string
	staleAfter      time.Duration
	maxAge          time.Duration
	maxAgeSet       bool
	waitTimeout     time.Duration
	nextTime        bool
	force           bool
	skip            bool
	discardFailures bool
	keyDir          bool
	keyEnv          []string
	verbose         bool
	stdin           bool
	keyFiles        []string
	warm            bool
	pruneAfter      time.Duration
	maxSize         int64
	argv            []string
}

func (c *runConfig) validate() error {
	switch {
	case len(c.argv) == 0:
		return errors.New("no command given; usage: cachier run [flags] -- CMD [ARGS...]")
	case c.argv[0] == "":
		return errors.New("the command name is empty")
	case c.staleAfter < 0:
		return fmt.Errorf("--stale-after %v is negative; give a duration such as 10m", c.staleAfter)
	case c.waitTimeout < 0:
		return fmt.Errorf("--wait-timeout %v is negative; give a duration such as 30s", c.waitTimeout)
	case c.force && c.skip:
		return errors.New("--force records the run and --skip records nothing; give one of them")
	case c.nextTime && c.staleAfter == 0 && !c.maxAgeSet:
		return errors.New("--next-time needs --stale-after (or --max-age): without one, recorded runs never go stale")
	case c.warm && (c.skip || c.nextTime):
		return errors.New("--warm records CMD in the background; it cannot be combined with --skip or --next-time")
	case c.nextTime && c.stdin:
		return errors.New("--next-time refreshes in a background process, which has no standard input to key on; it cannot be combined with --stdin")
	case c.warm && c.stdin:
		return errors.New("--warm runs CMD in the background, detached from standard input; it cannot be combined with --stdin")
	case c.pruneAfter < 0:
		return fmt.Errorf("--prune-after %v is negative; give a duration such as 30d, or 0 to turn pruning off", c.pruneAfter)
	case c.maxSize < 0:
		return fmt.Errorf("--max-size %d is negative; give a size such as 1G, or 0 for no limit", c.maxSize)
	}
	if err := store.ValidateNamespace(c.name); err != nil {
		return fmt.Errorf("--name %s: %w", quote(c.name), err)
	}
	return nil
}

// runArgs is the argument of the cached function: what identifies a run.
type runArgs struct {
	Argv  []string
	Dir   string            // with --key-dir
	Env   map[string]string // with --key-env: the variables that are set
	Stdin string            // with --stdin: the SHA-256 of standard input, in hex
	Files string            // with --key-file: the digest of the patterns and the matching files
}

// runResult is the cached result: what a run produced, and (for ls and rm) the
// command line and working directory that produced it.
type runResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	Argv     []string `cbor:",omitempty"`
	Dir      string   `cbor:",omitempty"`
}

// unrecorded carries the result of a run that must not be recorded (a non-zero exit
// with --discard-failures, a CMD killed by a signal) through cachier's error path,
// which stores nothing.
type unrecorded struct {
	result runResult
	why    string
}

func (u *unrecorded) Error() string { return "not recorded: " + u.why }

// startError reports a CMD that could not be started; it is never recorded.
type startError struct {
	code int
	err  error
}

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// interrupted is the cause of the run's context when a signal arrived while cachier
// was not executing CMD.
type interrupted struct{ sig os.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.sig.String() }

// executor runs CMD for the cached function, once per process.
type executor struct {
	m *Main
	c *runConfig

	wd    string // the working directory, recorded with the run
	stdin []byte // with --stdin: standard input, read whole

	mu       sync.Mutex
	proc     *os.Process // CMD while it runs
	executed bool        // CMD was started by this process
	stopped  bool        // a signal arrived before CMD started: do not start it
}

// execute is the cached function: it runs CMD, streaming its output to Main's
// streams while it records it.
func (x *executor) execute(_ context.Context, a runArgs) (runResult, error) {
	var res runResult
	var stdout, stderr bytes.Buffer
	res.Argv, res.Dir = a.Argv, x.wd
	cmd := exec.Command(a.Argv[0], a.Argv[1:]...)
	cmd.Stdin = x.m.Stdin
	if x.stdin != nil {
		cmd.Stdin = bytes.NewReader(x.stdin)
	}
	cmd.Stdout = &tee{w: x.m.Stdout, buf: &stdout}
	cmd.Stderr = &tee{w: x.m.Stderr, buf: &stderr}

	x.mu.Lock()
	if x.stopped {
		x.mu.Unlock()
		return res, errors.New("interrupted before the command started")
	}
	err := cmd.Start()
	if err != nil {
		x.mu.Unlock()
		return res, startFailure(a.Argv[0], err)
	}
	x.proc, x.executed = cmd.Process, true
	x.mu.Unlock()

	err = cmd.Wait()
	x.mu.Lock()
	x.proc = nil
	x.mu.Unlock()

	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = exitSignal + int(ws.Signal())
			return res, &unrecorded{result: res, why: "the command was killed by " + ws.Signal().String()}
		}
		res.ExitCode = ee.ExitCode()
	case err != nil:
		return res, fmt.Errorf("run %s: %w", quote(a.Argv[0]), err)
	}
	if res.ExitCode != 0 && x.c.discardFailures {
		return res, &unrecorded{result: res, why: fmt.Sprintf("exit status %d (--discard-failures)", res.ExitCode)}
	}
	return res, nil
}

// startFailure classifies a failure to start name: not found (127) or not
// executable (126), as shells do.
func startFailure(name string, err error) error {
	code := exitNotExec
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = exitNotFound
	}
	return &startError{code: code, err: fmt.Errorf("cannot run %s: %w", quote(name), err)}
}

// signal handles a signal that cachier received: CMD gets SIGTERM and SIGHUP
// forwarded (SIGINT from a terminal already reached it, in the same process group);
// without CMD running, cachier stops waiting.
func (x *executor) signal(sig os.Signal, cancel context.CancelCauseFunc) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.proc != nil {
		if sig != os.Interrupt {
			_ = x.proc.Signal(sig)
		}
		return
	}
	x.stopped = true
	cancel(interrupted{sig})
}

// tee writes to w and records in buf. A failing w (a closed pipe) does not stop the
// recording: the run is recorded whole.
type tee struct {
	w    io.Writer
	buf  *bytes.Buffer
	wErr error
}

func (t *tee) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if t.w != nil && t.wErr == nil {
		_, t.wErr = t.w.Write(p)
	}
	return len(p), nil
}

// key builds the argument that identifies the run. With --stdin it reads standard
// input whole and returns it, to be passed to CMD.
func (c *runConfig) key(m *Main, wd string) (runArgs, []byte, error) {
	a := runArgs{Argv: c.argv}
	if c.keyDir {
		if wd == "" {
			return a, nil, errors.New("--key-dir: cannot find the working directory")
		}
		a.Dir = wd
	}
	for _, name := range c.keyEnv {
		if v, ok := os.LookupEnv(name); ok {
			if a.Env == nil {
				a.Env = map[string]string{}
			}
			a.Env[name] = v
		}
	}
	var in []byte
	if c.stdin {
		var err error
		if in, err = io.ReadAll(m.Stdin); err != nil {
			return a, nil, fmt.Errorf("--stdin: read standard input: %w", err)
		}
		sum := sha256.Sum256(in)
		a.Stdin = hex.EncodeToString(sum[:])
	}
	if len(c.keyFiles) > 0 {
		d, err := fileDigests(m, c.keyFiles)
		if err != nil {
			return a, nil, err
		}
		a.Files = d
	}
	return a, in, nil
}

// keepFor is how long the store keeps a recorded run: --prune-after, or, with pruning
// off, a century.
func (c *runConfig) keepFor() time.Duration {
	if c.pruneAfter > 0 {
		return c.pruneAfter
	}
	return 100 * 365 * 24 * time.Hour
}

// options are the per-call options. Every staleness decision is the library's:
// StaleAfter and MaxAge go to Call and Peek as options.
func (c *runConfig) options() []cachier.Option {
	opts := []cachier.Option{cachier.StaleAfter(c.staleAfter)}
	if c.maxAgeSet {
		opts = append(opts, cachier.MaxAge(c.maxAge))
	}
	if c.waitTimeout > 0 {
		opts = append(opts, cachier.WaitForCalcTimeout(c.waitTimeout))
	}
	if c.force {
		opts = append(opts, cachier.Overwrite())
	}
	if c.skip {
		opts = append(opts, cachier.SkipCache())
	}
	if c.verbose {
		opts = append(opts, cachier.Verbose())
	}
	return opts
}

func (c *runConfig) run(ctx context.Context, m *Main) error {
	storeURL := m.storeURL(*c.store)
	if c.warm {
		// Checked here, not left to the detached run, whose errors nobody sees.
		if strings.HasPrefix(storeURL, "mem:") {
			return usageError(runCmd, "run: --warm with the mem:// store records nothing: the background process has its own memory")
		}
		if _, err := c.startDetached(storeURL, true); err != nil {
			return fmt.Errorf("run: --warm: cannot start the background run: %w", err)
		}
		return nil
	}
	// Standard input and the files of --key-file are read before the store is
	// opened: they are part of the key, and CMD needs standard input either way.
	wd, _ := os.Getwd()
	arg, in, err := c.key(m, wd)
	if err != nil {
		return usageError(runCmd, "run: %v", err)
	}

	// Store failures come back as errors (FailOnStoreError) and are reported once,
	// below; the rest of the library's warnings are for --verbose.
	level := slog.LevelError
	if c.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime}))
	x := &executor{m: m, c: c, wd: wd, stdin: in}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				x.signal(sig, cancel)
			}
		}
	}()

	// A store that cannot be opened (unreachable, not a bad URL) fails open: CMD
	// runs without the cache.
	st, err := m.openStore(ctx, storeURL)
	if err != nil {
		if errors.Is(err, store.ErrBadURL) {
			return err
		}
		m.warnStoreDown(storeURL, err)
		return c.runLive(ctx, x, arg)
	}
	defer st.Close()

	f, err := cachier.Wrap(x.execute,
		cachier.Name(c.name),
		cachier.WithStore(st),
		cachier.WithLogger(log),
		// Store failures come back as errors, so that cachier tells a store that
		// fails before CMD ran (run CMD live, warn once) from one that fails after
		// (CMD's output stands; warn that it was not recorded).
		cachier.FailOnStoreError(true),
		// A recorded run is kept until pruning drops it, whatever --stale-after this
		// invocation gives: the next one may give another, or --next-time.
		cachier.ExpireAfter(c.keepFor()),
	)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer c.prune(ctx, m, storeURL, st, log)

	// --next-time: a stale run is replayed as it is, and refreshed by a detached
	// cachier, since this process exits as soon as it has replayed. Whether it is
	// stale is the library's decision (Peek applies the same rules as Call:
	// per-entry limits, tags and dependencies included).
	if c.nextTime && !c.force && !c.skip {
		v, fr, err := f.Peek(ctx, arg, c.options()...)
		switch {
		case err != nil && errors.Is(err, cachier.ErrStore):
			m.warnStoreDown(storeURL, errors.New(storeCause(err)))
			return c.runLive(ctx, x, arg)
		case err != nil:
			return fmt.Errorf("run: %w", err)
		case fr == cachier.Stale:
			if c.verbose {
				log.Info("cachier: replaying a stale recorded run", "ns", c.name, "exit", v.ExitCode)
			}
			c.replay(m, v)
			if pid, err := c.startDetached(storeURL, false); err != nil {
				log.Warn("cachier: cannot start the background refresh", "err", err)
			} else if c.verbose {
				log.Info("cachier: refreshing in the background", "pid", pid)
			}
			return exitStatus(v.ExitCode)
		}
	}
	res, err := f.Call(ctx, arg, c.options()...)
	var (
		un  *unrecorded
		se  *startError
		in2 interrupted
	)
	switch {
	case errors.As(err, &un):
		res = un.result
		if c.verbose {
			log.Info("cachier: run "+un.Error(), "ns", c.name)
		}
	case errors.As(err, &se):
		return &exitError{code: se.code, err: se}
	case err != nil && errors.As(context.Cause(ctx), &in2):
		return &exitError{code: exitSignal + signalNumber(in2.sig), err: fmt.Errorf("%v while waiting for an identical run", in2)}
	case errors.Is(err, cachier.ErrStore):
		if !x.ran() {
			// The store failed before CMD ran: run it without the cache.
			m.warnStoreDown(storeURL, errors.New(storeCause(err)))
			return c.runLive(ctx, x, arg)
		}
		// CMD ran and its output was shown; only recording it failed.
		fmt.Fprintf(m.Stderr, "cachier: warning: the run was not recorded: store %s failed: %s\n",
			displayURL(storeURL), m.redact(storeCause(err)))
	case err != nil:
		return fmt.Errorf("run: %w", err)
	}
	if !x.ran() {
		if c.verbose {
			log.Info("cachier: replaying a recorded run", "ns", c.name, "exit", res.ExitCode, "stdout", len(res.Stdout), "stderr", len(res.Stderr))
		}
		c.replay(m, res)
	}
	return exitStatus(res.ExitCode)
}

// replay writes a recorded run's output.
func (c *runConfig) replay(m *Main, res runResult) {
	_, _ = m.Stdout.Write(res.Stdout)
	_, _ = m.Stderr.Write(res.Stderr)
}

// exitStatus is the exit of cachier for a command's status.
func exitStatus(code int) error {
	if code != 0 {
		return exitWith(code)
	}
	return nil
}

// warnStoreDown prints the one warning of a run whose store failed before CMD ran.
func (m *Main) warnStoreDown(storeURL string, err error) {
	fmt.Fprintf(m.Stderr, "cachier: warning: store %s is unavailable, running the command without the cache: %s\n",
		displayURL(storeURL), m.redact(err.Error()))
}

// runLive executes CMD without the cache (the store is down) and exits with its
// status.
func (c *runConfig) runLive(ctx context.Context, x *executor, arg runArgs) error {
	res, err := x.execute(ctx, arg)
	var (
		un *unrecorded
		se *startError
	)
	switch {
	case errors.As(err, &un):
		res = un.result
	case errors.As(err, &se):
		return &exitError{code: se.code, err: se}
	case err != nil:
		return fmt.Errorf("run: %w", err)
	}
	return exitStatus(res.ExitCode)
}

// storeCause is the message of a cachier.ErrStore error without its "cachier: store
// failed: " prefix, which cachier's own message replaces.
func storeCause(err error) string {
	return strings.TrimPrefix(err.Error(), cachier.ErrStore.Error()+": ")
}

func (x *executor) ran() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.executed
}

// refreshArgs is the command line of the background refresh: the same run without
// --next-time, so that it executes CMD only if the run is still stale (under the
// calculation lease: concurrent refreshes execute it once), with its output
// discarded. The store URL goes through the environment, not the command line, where
// other users could read a password.
func (c *runConfig) refreshArgs(force bool) []string {
	args := []string{"run", "--name=" + c.name}
	if force {
		args = append(args, "--force")
	}
	args = append(args, "--prune-after="+formatDuration(c.pruneAfter), "--max-size="+strconv.FormatInt(c.maxSize, 10))
	for _, g := range c.keyFiles {
		args = append(args, "--key-file="+g)
	}
	if c.staleAfter > 0 {
		args = append(args, "--stale-after="+formatDuration(c.staleAfter))
	}
	if c.maxAgeSet {
		args = append(args, "--max-age="+formatDuration(c.maxAge))
	}
	if c.waitTimeout > 0 {
		args = append(args, "--wait-timeout="+formatDuration(c.waitTimeout))
	}
	if c.discardFailures {
		args = append(args, "--discard-failures")
	}
	if c.keyDir {
		args = append(args, "--key-dir")
	}
	for _, e := range c.keyEnv {
		args = append(args, "--key-env="+e)
	}
	return append(append(args, "--"), c.argv...)
}

// startDetached starts a detached cachier (its own session or process group, stdio
// on the null device, in the same working directory) that runs refreshArgs(force),
// and returns its PID: the background refresh of --next-time, or --warm's run.
func (c *runConfig) startDetached(storeURL string, force bool) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, c.refreshArgs(force)...)
	cmd.Env = append(os.Environ(), envStore+"="+storeURL)
	cmd.SysProcAttr = detachedAttr()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	return pid, cmd.Process.Release()
}

func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return 0
}

// dropTime removes the time from log lines, which are for people at a terminal.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
