package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
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
the others wait and replay. Put -- before CMD when CMD or its arguments start with -.

The key is the argument list (not the path CMD resolves to); --key-dir adds the
working directory and --key-env the named environment variables. Standard input is
passed to CMD but is not part of the key. A CMD killed by a signal, or one that could
not start, is never recorded; with --discard-failures, no non-zero exit is either.
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		c := &runConfig{}
		c.store = storeFlag(fs)
		fs.StringVar(&c.name, "name", defaultRunNamespace, "the `namespace` of the entries")
		fs.DurationVar(&c.staleAfter, "stale-after", 0, "a recorded run older than `D` is stale and executes again (default: never stale)")
		fs.DurationVar(&c.maxAge, "max-age", 0, "like --stale-after for this run only (the smaller wins); negative: always execute")
		fs.DurationVar(&c.waitTimeout, "wait-timeout", 0, "execute CMD after waiting `D` for an identical run (default: wait for it to finish)")
		fs.BoolVar(&c.nextTime, "next-time", false, "replay a stale run at once and refresh it in a background process (needs --stale-after or --max-age)")
		fs.BoolVar(&c.force, "force", false, "execute CMD and record it even if a fresh run is recorded")
		fs.BoolVar(&c.skip, "skip", false, "execute CMD without the cache: read and record nothing")
		fs.BoolVar(&c.discardFailures, "discard-failures", false, "do not record a run that exits non-zero")
		fs.BoolVar(&c.keyDir, "key-dir", false, "make the working directory part of the key")
		fs.Var((*envNames)(&c.keyEnv), "key-env", "make environment variable `NAME` part of the key (repeatable)")
		fs.BoolVar(&c.verbose, "verbose", false, "log what cachier decides (hit, miss, wait, store) on stderr")
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
	}
	if err := store.ValidateNamespace(c.name); err != nil {
		return fmt.Errorf("--name %s: %w", quote(c.name), err)
	}
	return nil
}

// limit is the age from which a recorded run is stale: min(--stale-after,
// --max-age); 0 means never, negative always (cachier's rule).
func (c *runConfig) limit() time.Duration {
	switch {
	case !c.maxAgeSet:
		return c.staleAfter
	case c.maxAge < 0:
		return -1
	case c.staleAfter == 0 || c.maxAge < c.staleAfter:
		return c.maxAge
	default:
		return c.staleAfter
	}
}

// runArgs is the argument of the cached function: what identifies a run.
type runArgs struct {
	Argv []string
	Dir  string            // with --key-dir
	Env  map[string]string // with --key-env: the variables that are set
}

// runResult is the cached result: what a run produced.
type runResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
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
	cmd := exec.Command(a.Argv[0], a.Argv[1:]...)
	cmd.Stdin = x.m.Stdin
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

// key builds the argument that identifies the run.
func (c *runConfig) key() (runArgs, error) {
	a := runArgs{Argv: c.argv}
	if c.keyDir {
		wd, err := os.Getwd()
		if err != nil {
			return a, fmt.Errorf("--key-dir: working directory: %w", err)
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
	return a, nil
}

// options are the per-call options; withLimits false leaves staleness out (to
// replay a stale run).
func (c *runConfig) options(withLimits bool) []cachier.Option {
	var opts []cachier.Option
	if withLimits {
		opts = append(opts, cachier.StaleAfter(c.staleAfter))
		if c.maxAgeSet {
			opts = append(opts, cachier.MaxAge(c.maxAge))
		}
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
	st, err := m.openStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer st.Close()

	// Store failures come back as errors (FailOnStoreError) and are reported once,
	// below; the rest of the library's warnings are for --verbose.
	level := slog.LevelError
	if c.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime}))
	x := &executor{m: m, c: c}
	f, err := cachier.Wrap(x.execute,
		cachier.Name(c.name),
		cachier.WithStore(st),
		cachier.WithLogger(log),
		// A store that fails before CMD runs fails the run (exit 3) rather than
		// silently executing without the cache.
		cachier.FailOnStoreError(true),
	)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	arg, err := c.key()
	if err != nil {
		return err
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
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

	// --next-time: a stale run is replayed as it is, and refreshed by a detached
	// cachier, since this process exits as soon as it has replayed.
	stale := false
	if c.nextTime && !c.force && !c.skip {
		if stale, err = c.isStale(ctx, f, st, arg); err != nil {
			return storeError(fmt.Errorf("store %s failed before the command ran: %w", displayURL(storeURL), err))
		}
	}
	res, err := f.Call(ctx, arg, c.options(!stale)...)
	var (
		un *unrecorded
		se *startError
		in interrupted
	)
	switch {
	case errors.As(err, &un):
		res = un.result
		if c.verbose {
			log.Info("cachier: run "+un.Error(), "ns", c.name)
		}
	case errors.As(err, &se):
		return &exitError{code: se.code, err: se}
	case err != nil && errors.As(context.Cause(ctx), &in):
		return &exitError{code: exitSignal + signalNumber(in.sig), err: fmt.Errorf("%v while waiting for an identical run", in)}
	case errors.Is(err, cachier.ErrStore):
		if !x.ran() {
			return storeError(fmt.Errorf("store %s failed before the command ran: %s", displayURL(storeURL), storeCause(err)))
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
		_, _ = m.Stdout.Write(res.Stdout)
		_, _ = m.Stderr.Write(res.Stderr)
		if stale {
			if pid, err := c.refreshInBackground(storeURL); err != nil {
				log.Warn("cachier: cannot start the background refresh", "err", err)
			} else if c.verbose {
				log.Info("cachier: refreshing in the background", "pid", pid)
			}
		}
	}
	if res.ExitCode != 0 {
		return exitWith(res.ExitCode)
	}
	return nil
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

// isStale reports whether a stale run is recorded for arg.
func (c *runConfig) isStale(ctx context.Context, f *cachier.Func[runArgs, runResult], st store.Store, arg runArgs) (bool, error) {
	k, err := f.Key(arg)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	e, err := st.Get(ctx, k)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	limit := c.limit()
	return limit < 0 || (limit > 0 && time.Since(e.StoredAt) >= limit), nil
}

// refreshArgs is the command line of the background refresh: the same run without
// --next-time, so that it executes CMD only if the run is still stale (under the
// calculation lease: concurrent refreshes execute it once), with its output
// discarded. The store URL goes through the environment, not the command line, where
// other users could read a password.
func (c *runConfig) refreshArgs() []string {
	args := []string{"run", "--name=" + c.name}
	if c.staleAfter > 0 {
		args = append(args, "--stale-after="+c.staleAfter.String())
	}
	if c.maxAgeSet {
		args = append(args, "--max-age="+c.maxAge.String())
	}
	if c.waitTimeout > 0 {
		args = append(args, "--wait-timeout="+c.waitTimeout.String())
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

// refreshInBackground starts a detached cachier (its own session, stdio on
// /dev/null) that refreshes the run, and returns its PID.
func (c *runConfig) refreshInBackground(storeURL string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, c.refreshArgs()...)
	cmd.Env = append(os.Environ(), envStore+"="+storeURL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
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
