package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cachier-go/cachier/internal/testserver"
)

// cachierBin is the cachier binary built by TestMain (with -race when the tests are).
var cachierBin string

// binDirPrefix names the directories holding built binaries; one per test process.
const binDirPrefix = "cachier-cli-test-"

func TestMain(m *testing.M) {
	removeStaleBinDirs()
	dir := filepath.Join(os.TempDir(), binDirPrefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "cannot create the binary directory:", err)
		os.Exit(1)
	}
	cachierBin = filepath.Join(dir, "cachier")
	args := []string{"build", "-o", cachierBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build of the cachier binary failed: %v\n%s", err, out)
		os.Exit(1)
	}
	// testserver.Main exits; the binary's directory is removed by the next run
	// (removeStaleBinDirs), as testserver does with its data directories.
	testserver.Main(m)
}

// removeStaleBinDirs removes the binary directories of test processes that are gone.
func removeStaleBinDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, d := range matches {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), binDirPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if processGone(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

// deadline bounds every poll for an eventual state; it is generous, never asserted on.
const deadline = 60 * time.Second

// env is one test's world: a home, a cache directory, a working directory and a store.
type env struct {
	t        *testing.T
	home     string
	cache    string
	work     string
	storeURL string // "" means the default file store
	extraEnv []string
}

func newEnv(t *testing.T, storeURL string) *env {
	t.Helper()
	e := &env{t: t, home: t.TempDir(), cache: t.TempDir(), work: t.TempDir(), storeURL: storeURL}
	return e
}

// storeKinds runs fn once with the default file store and once with a Redis store.
func storeKinds(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		fn(t, newEnv(t, ""))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := testserver.Redis(t)
		fn(t, newEnv(t, srv.URL+"?prefix=cli"+randomHex(6)))
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// environ is the environment of a cachier process.
func (e *env) environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "HOME", "XDG_CACHE_HOME", "GORACE", envStore:
			continue
		}
		out = append(out, kv)
	}
	// The race detector sleeps a second at exit unless told not to; a race fails
	// the process (exit 66) at once.
	out = append(out, "HOME="+e.home, "XDG_CACHE_HOME="+e.cache, "GORACE=atexit_sleep_ms=0 halt_on_error=1")
	if e.storeURL != "" {
		out = append(out, envStore+"="+e.storeURL)
	}
	return append(out, e.extraEnv...)
}

// command returns an unstarted cachier process.
func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(cachierBin, args...)
	cmd.Dir = e.work
	cmd.Env = e.environ()
	return cmd
}

// result is what a cachier process did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs cachier to completion.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.wait(e.command(args...))
}

func (e *env) wait(cmd *exec.Cmd) result {
	e.t.Helper()
	return e.start(cmd)()
}

// start starts cmd and returns the function that waits for its result.
func (e *env) start(cmd *exec.Cmd) func() result {
	e.t.Helper()
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("cachier %q: %v", cmd.Args[1:], err)
	}
	return func() result {
		e.t.Helper()
		return e.collect(cmd, cmd.Wait(), &stdout, &stderr)
	}
}

func (e *env) collect(cmd *exec.Cmd, err error, stdout, stderr *bytes.Buffer) result {
	e.t.Helper()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("cachier %q: %v", cmd.Args[1:], err)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		e.t.Fatalf("cachier %q raced:\n%v", cmd.Args[1:], r)
	}
	return r
}

// count returns the number of lines in the working directory's file name.
func (e *env) count(name string) int {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.work, name))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

func (e *env) touch(name string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.work, name), nil, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counted is a shell command that appends a line to the file "counter" each time it
// executes.
const counted = `echo ran >> counter; `

func TestReplayIsByteIdentical(t *testing.T) {
	storeKinds(t, func(t *testing.T, e *env) {
		script := counted + `printf 'out\n\001\377 no newline'; echo err >&2; printf '\tmore err' >&2; exit 3`
		first := e.run("run", "--", "sh", "-c", script)
		want := result{stdout: "out\n\001\377 no newline", stderr: "err\n\tmore err", code: 3}
		if first != want {
			t.Fatalf("first run:\n%v\nwant:\n%v", first, want)
		}
		second := e.run("run", "--", "sh", "-c", script)
		if second != want {
			t.Fatalf("replay:\n%v\nwant:\n%v", second, want)
		}
		if n := e.count("counter"); n != 1 {
			t.Fatalf("the command executed %d times, want 1", n)
		}
		// A different argument list is a different entry.
		other := e.run("run", "--", "sh", "-c", script, "extra-arg")
		if other != want || e.count("counter") != 2 {
			t.Fatalf("a different argv did not execute: %v, count %d", other, e.count("counter"))
		}
	})
}

func TestConcurrentRunsExecuteOnce(t *testing.T) {
	storeKinds(t, func(t *testing.T, e *env) {
		const n = 4
		script := counted + `sleep 0.3; echo done`
		cmds := make([]*exec.Cmd, n)
		outs := make([]*bytes.Buffer, n)
		for i := range cmds {
			cmds[i] = e.command("run", "--", "sh", "-c", script)
			outs[i] = new(bytes.Buffer)
			cmds[i].Stdout = outs[i]
			cmds[i].Stderr = os.Stderr
		}
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Errorf("run %d: %v", i, err)
			}
			if outs[i].String() != "done\n" {
				t.Errorf("run %d printed %q, want %q", i, outs[i], "done\n")
			}
		}
		if got := e.count("counter"); got != 1 {
			t.Fatalf("%d identical concurrent runs executed the command %d times, want 1", n, got)
		}
	})
}

func TestStreamsLive(t *testing.T) {
	e := newEnv(t, "")
	// The command prints a line, then waits for the test to see it: if cachier only
	// wrote the output at the end, the test would time out.
	cmd := e.command("run", "--", "sh", "-c", `echo first; while [ ! -f go ]; do sleep 0.02; done; echo second`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 6)
		n, _ := stdout.Read(b)
		got <- string(b[:n])
	}()
	select {
	case s := <-got:
		if s != "first\n" {
			t.Fatalf("first output %q, want %q", s, "first\n")
		}
	case <-time.After(deadline):
		t.Fatal("the first line was not streamed while the command ran")
	}
	e.touch("go")
	rest := new(bytes.Buffer)
	_, _ = rest.ReadFrom(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if rest.String() != "second\n" {
		t.Fatalf("rest of the output %q", rest)
	}
	if r := e.run("run", "--", "sh", "-c", `echo first; while [ ! -f go ]; do sleep 0.02; done; echo second`); r.stdout != "first\nsecond\n" {
		t.Fatalf("replay: %v", r)
	}
}

func TestNextTime(t *testing.T) {
	storeKinds(t, func(t *testing.T, e *env) {
		script := counted + `wc -l < counter | tr -d ' '`
		if r := e.run("run", "--", "sh", "-c", script); r.stdout != "1\n" || r.code != 0 {
			t.Fatalf("first run: %v", r)
		}
		// Stale at once (1ns): replay the old output and refresh in the background.
		r := e.run("run", "--stale-after=1ns", "--next-time", "--verbose", "--", "sh", "-c", script)
		if r.stdout != "1\n" || r.code != 0 {
			t.Fatalf("stale run with --next-time did not replay the stale output: %v", r)
		}
		_, after, ok := strings.Cut(r.stderr, `refreshing in the background" pid=`)
		pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(after, "\n", 2)[0]))
		if !ok || err != nil {
			t.Fatalf("no background refresh reported: %v", r)
		}
		// The refresher is not our child: wait for it to be gone before the
		// temporary directories are removed.
		defer eventually(t, "the background refresh to exit", func() bool {
			return processGone(pid)
		})
		eventually(t, "the background refresh to execute the command", func() bool { return e.count("counter") >= 2 })
		eventually(t, "the refreshed output to be recorded", func() bool {
			return e.run("run", "--", "sh", "-c", script).stdout == "2\n"
		})
		if n := e.count("counter"); n != 2 {
			t.Fatalf("the command executed %d times, want 2", n)
		}
	})
}

func TestForceSkipDiscardFailures(t *testing.T) {
	storeKinds(t, func(t *testing.T, e *env) {
		script := counted + `wc -l < counter | tr -d ' '`
		e.run("run", "--", "sh", "-c", script)
		if r := e.run("run", "--force", "--", "sh", "-c", script); r.stdout != "2\n" {
			t.Fatalf("--force did not execute: %v", r)
		}
		if r := e.run("run", "--", "sh", "-c", script); r.stdout != "2\n" {
			t.Fatalf("--force did not record: %v", r)
		}
		if r := e.run("run", "--skip", "--", "sh", "-c", script); r.stdout != "3\n" {
			t.Fatalf("--skip did not execute: %v", r)
		}
		if r := e.run("run", "--", "sh", "-c", script); r.stdout != "2\n" {
			t.Fatalf("--skip recorded its run: %v", r)
		}

		fail := `echo x >> fails; echo failing; exit 5`
		for i := 1; i <= 2; i++ {
			r := e.run("run", "--discard-failures", "--", "sh", "-c", fail)
			if r.code != 5 || r.stdout != "failing\n" {
				t.Fatalf("--discard-failures run %d: %v", i, r)
			}
			if n := e.count("fails"); n != i {
				t.Fatalf("after %d runs with --discard-failures the command executed %d times", i, n)
			}
		}
		// Without the flag a failure is recorded and replayed.
		e.run("run", "--", "sh", "-c", fail)
		if r := e.run("run", "--", "sh", "-c", fail); r.code != 5 || e.count("fails") != 3 {
			t.Fatalf("failure not recorded: %v, executed %d times", r, e.count("fails"))
		}
	})
}

func TestKeyDirAndEnv(t *testing.T) {
	e := newEnv(t, "")
	sub := filepath.Join(e.work, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	counter := filepath.Join(e.work, "counter")
	script := `echo ran >> ` + counter + `; echo "$FOO"`
	run := func(dir, foo string, args ...string) result {
		cmd := e.command(append(append([]string{"run"}, args...), "--", "sh", "-c", script)...)
		cmd.Dir = dir
		cmd.Env = append(cmd.Env, "FOO="+foo)
		return e.wait(cmd)
	}
	run(e.work, "1")
	if r := run(sub, "2"); r.stdout != "1\n" || e.count("counter") != 1 {
		t.Fatalf("without --key-dir/--key-env the directory or environment changed the key: %v", r)
	}
	run(e.work, "1", "--key-dir")
	if r := run(sub, "1", "--key-dir"); e.count("counter") != 3 || r.stdout != "1\n" {
		t.Fatalf("--key-dir: %v, executed %d times, want 3", r, e.count("counter"))
	}
	run(e.work, "1", "--key-env", "FOO")
	if r := run(e.work, "2", "--key-env", "FOO"); r.stdout != "2\n" || e.count("counter") != 5 {
		t.Fatalf("--key-env: %v, executed %d times, want 5", r, e.count("counter"))
	}
	if r := run(sub, "2", "--key-env", "FOO"); r.stdout != "2\n" || e.count("counter") != 5 {
		t.Fatalf("--key-env replay: %v, executed %d times, want 5", r, e.count("counter"))
	}
}

func TestNotRecorded(t *testing.T) {
	e := newEnv(t, "")
	// Killed by a signal: exit 128+9, not recorded.
	for i := 1; i <= 2; i++ {
		r := e.run("run", "--", "sh", "-c", counted+`kill -9 $$`)
		if r.code != 128+9 || e.count("counter") != i {
			t.Fatalf("run %d of a killed command: %v, executed %d times", i, r, e.count("counter"))
		}
	}
	// Not found and not executable.
	if r := e.run("run", "--", "no-such-command-for-cachier"); r.code != exitNotFound || !strings.Contains(r.stderr, "no-such-command-for-cachier") {
		t.Fatalf("missing command: %v", r)
	}
	if err := os.WriteFile(filepath.Join(e.work, "noexec"), []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.run("run", "--", "./noexec"); r.code != exitNotExec {
		t.Fatalf("non-executable command: %v", r)
	}
}

func TestWaitTimeout(t *testing.T) {
	e := newEnv(t, "")
	script := counted + `while [ ! -f release ]; do sleep 0.02; done; echo done`
	holder := e.command("run", "--", "sh", "-c", script)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { e.touch("release"); _ = holder.Wait() }()
	eventually(t, "the first run to start the command", func() bool { return e.count("counter") == 1 })
	// The second run stops waiting after 50ms and executes the command itself.
	second := e.command("run", "--wait-timeout=50ms", "--", "sh", "-c", script)
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second run to execute the command", func() bool { return e.count("counter") == 2 })
	e.touch("release")
	if err := second.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestManage drives ls, stats, unlock, clear and gc on both stores.
func TestManage(t *testing.T) {
	storeKinds(t, func(t *testing.T, e *env) {
		for i := range 3 {
			e.run("run", "--name=manage", "--", "echo", strconv.Itoa(i))
		}
		e.run("run", "--", "echo", "default namespace")

		r := e.run("ls")
		if r.code != 0 || !strings.Contains(r.stdout, "manage") || !strings.Contains(r.stdout, "cachier-run") {
			t.Fatalf("ls: %v", r)
		}
		var stats struct {
			Namespaces []nsSummary `json:"namespaces"`
			Entries    int         `json:"entries"`
		}
		decodeJSON(t, e.run("stats", "--json"), &stats)
		if stats.Entries != 4 || len(stats.Namespaces) != 2 || stats.Namespaces[1].Namespace != "manage" || stats.Namespaces[1].Entries != 3 {
			t.Fatalf("stats --json: %+v", stats)
		}
		if r := e.run("stats"); r.code != 0 || !strings.Contains(r.stdout, "TOTAL") {
			t.Fatalf("stats: %v", r)
		}
		if r := e.run("ls", "--stale-after=1h", "manage"); r.code != 0 || strings.Count(r.stdout, "fresh") != 3 {
			t.Fatalf("ls NAMESPACE: %v", r)
		}

		// A lease in progress shows its owner, and unlock releases it.
		holder := e.command("run", "--name=manage", "--", "sh", "-c", counted+`while [ ! -f release ]; do sleep 0.02; done`)
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { e.touch("release"); _ = holder.Wait() }()
		var ls struct {
			Entries []entryJSON `json:"entries"`
			Leases  []leaseJSON `json:"leases"`
		}
		eventually(t, "the lease to be listed", func() bool {
			decodeJSON(t, e.run("ls", "--json", "manage"), &ls)
			return len(ls.Leases) == 1
		})
		if ls.Leases[0].PID != holder.Process.Pid || ls.Leases[0].Host == "" || ls.Leases[0].ExpiresInSeconds <= 0 {
			t.Fatalf("lease %+v, want the holder's PID %d", ls.Leases[0], holder.Process.Pid)
		}
		if r := e.run("ls", "manage"); !strings.Contains(r.stdout, "leases in progress") || !strings.Contains(r.stdout, strconv.Itoa(holder.Process.Pid)) {
			t.Fatalf("ls NAMESPACE with a lease: %v", r)
		}
		if r := e.run("unlock", "manage"); r.code != 0 || r.stdout != "released 1 leases in manage\n" {
			t.Fatalf("unlock: %v", r)
		}
		decodeJSON(t, e.run("ls", "--json", "manage"), &ls)
		if len(ls.Leases) != 0 {
			t.Fatalf("leases after unlock: %+v", ls.Leases)
		}
		e.touch("release")
		if err := holder.Wait(); err != nil {
			t.Fatal(err)
		}

		if r := e.run("clear", "manage"); r.code != 0 {
			t.Fatalf("clear: %v", r)
		}
		decodeJSON(t, e.run("ls", "--json", "manage"), &ls)
		if len(ls.Entries) != 0 {
			t.Fatalf("entries after clear: %+v", ls.Entries)
		}
		if r := e.run("run", "--name=manage", "--", "echo", "0"); r.stdout != "0\n" {
			t.Fatalf("run after clear: %v", r)
		}

		// gc: nothing is a day old; everything is older than 1ns. Enough namespaces
		// for a progress line.
		for i := range progressThreshold {
			e.run("run", "--name=gc"+strconv.Itoa(i), "--", "true")
		}
		var gc struct {
			Deleted int `json:"deleted"`
		}
		decodeJSON(t, e.run("gc", "--json", "--older-than=24h"), &gc)
		if gc.Deleted != 0 {
			t.Fatalf("gc --older-than=24h deleted %d entries", gc.Deleted)
		}
		r = e.run("gc", "--older-than=1ns")
		total := progressThreshold + 2
		if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("deleted %d entries", total)) {
			t.Fatalf("gc: %v", r)
		}
		if !strings.Contains(r.stderr, fmt.Sprintf("gc: %d/%[1]d namespaces, %d entries deleted", progressThreshold+2, total)) {
			t.Fatalf("gc progress: %v", r)
		}
		decodeJSON(t, e.run("stats", "--json"), &stats)
		if stats.Entries != 0 {
			t.Fatalf("entries after gc: %+v", stats)
		}
		if r := e.run("gc", "--older-than=1ns", "cachier-run"); r.code != 0 || !strings.Contains(r.stdout, "from 1 namespaces") {
			t.Fatalf("gc NAMESPACE: %v", r)
		}
	})
}

func decodeJSON(t *testing.T, r result, v any) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("cachier failed: %v", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("bad JSON: %v\n%v", err, r)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, "")
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr []string // substrings
	}{
		{"no subcommand", nil, exitUsage, []string{"no subcommand", "Usage:"}},
		{"unknown subcommand", []string{"frobnicate"}, exitUsage, []string{"unknown subcommand frobnicate", "Usage:"}},
		{"flag before subcommand", []string{"--store", "mem://", "ls"}, exitUsage, []string{"before the subcommand"}},
		{"unknown flag", []string{"ls", "--bogus"}, exitUsage, []string{"-bogus", "Usage: cachier ls"}},
		{"run without command", []string{"run", "--stale-after=1h"}, exitUsage, []string{"no command given"}},
		{"bad duration", []string{"run", "--stale-after=soon", "--", "true"}, exitUsage, []string{"stale-after", "soon"}},
		{"negative duration", []string{"run", "--stale-after=-1s", "--", "true"}, exitUsage, []string{"negative"}},
		{"force and skip", []string{"run", "--force", "--skip", "--", "true"}, exitUsage, []string{"--force", "--skip"}},
		{"next-time alone", []string{"run", "--next-time", "--", "true"}, exitUsage, []string{"--next-time needs --stale-after"}},
		{"bad key-env", []string{"run", "--key-env=A=B", "--", "true"}, exitUsage, []string{"not an environment variable name"}},
		{"gc without older-than", []string{"gc"}, exitUsage, []string{"--older-than"}},
		{"clear without namespace", []string{"clear"}, exitUsage, []string{"name the namespaces"}},
		{"help unknown", []string{"help", "nope"}, exitUsage, []string{"unknown command nope"}},
		{"unknown scheme", []string{"ls", "--store", "bogus://:secret@host/x"}, exitStore, []string{"unknown scheme", "bogus"}},
		{"malformed URL", []string{"ls", "--store", "redis://:secret@127.0.0.1:1/%zz"}, exitStore, []string{"bad URL"}},
		{"malformed host", []string{"run", "--store", "redis://:secret@[::1", "--", "true"}, exitStore, []string{"bad URL"}},
		{"no scheme", []string{"stats", "--store", "localhost:6379"}, exitStore, []string{"store"}},
		{"unreachable ls", []string{"ls", "--store", "redis://:secret@127.0.0.1:1/0"}, exitStore, []string{"127.0.0.1:1", "refused"}},
		{"bad duration days", []string{"run", "--stale-after=1w", "--", "true"}, exitUsage, []string{"1d12h", "units"}},
		{"flag after namespace", []string{"clear", "ns", "--store", "redis://:secret@127.0.0.1:1/0"}, exitStore, []string{"127.0.0.1:1", "refused"}},
		{"unlock flag after namespace", []string{"unlock", "ns", "--store", "redis://:secret@127.0.0.1:1/0"}, exitStore, []string{"127.0.0.1:1"}},
		{"ls flag after namespace", []string{"ls", "ns", "--store", "redis://:secret@127.0.0.1:1/0"}, exitStore, []string{"127.0.0.1:1"}},
		{"gc flag after namespace", []string{"gc", "ns", "--older-than", "1d", "--store", "redis://:secret@127.0.0.1:1/0"}, exitStore, []string{"127.0.0.1:1"}},
		{"next-time with stdin", []string{"run", "--next-time", "--stale-after=1h", "--stdin", "--", "true"}, exitUsage, []string{"--stdin"}},
		{"warm with stdin", []string{"run", "--warm", "--stdin", "--", "true"}, exitUsage, []string{"--stdin"}},
		{"clear nothing matched", []string{"clear", "nope"}, exitFailure, []string{"nothing matched nope"}},
		{"rm nothing matched", []string{"rm", "abcdef"}, exitFailure, []string{"nothing matched"}},
		{"rm command nothing matched", []string{"rm", "--command", "--", "echo", "x"}, exitFailure, []string{"nothing matched"}},
		{"bad key-file", []string{"run", "--key-file", "nothing-here/*.go", "--", "true"}, exitUsage, []string{"matches no file"}},
		{"unreachable gc", []string{"gc", "--older-than=1h", "--store", "redis://user:secret@127.0.0.1:1/0"}, exitStore, []string{"refused"}},
		{"memcached cannot list", []string{"ls", "--store", "memcache://127.0.0.1:1?lazy=1"}, exitUnsupported, []string{"not supported by the store", "memcache://127.0.0.1:1"}},
		{"memcached cannot stats", []string{"stats", "--store", "memcache://127.0.0.1:1?lazy=1"}, exitUnsupported, []string{"not supported"}},
		{"invalidate nothing", []string{"invalidate"}, exitUsage, []string{"--tag T or --prefix P"}},
		{"invalidate on memcached", []string{"invalidate", "--tag", "t", "--store", "memcache://127.0.0.1:1?lazy=1"}, exitStore, []string{"127.0.0.1:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.run(c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\n%v", r.code, c.code, r)
			}
			for _, s := range c.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not say %q\n%v", s, r)
				}
			}
			if strings.Contains(r.stdout+r.stderr, "secret") {
				t.Errorf("the password was printed\n%v", r)
			}
		})
	}
	if n := e.count("counter"); n != 0 {
		t.Fatalf("a failing store ran the command %d times", n)
	}
	// The password from the environment does not show in help.
	e.extraEnv = []string{envStore + "=redis://:secret@127.0.0.1:1/0"}
	for _, args := range [][]string{{"help", "run"}, {"run", "-h"}, {"ls", "--bogus"}, {"ls"}} {
		if r := e.run(args...); strings.Contains(r.stdout+r.stderr, "secret") {
			t.Errorf("cachier %q printed the password\n%v", args, r)
		}
	}
}

func TestHelp(t *testing.T) {
	e := newEnv(t, "")
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		if r := e.run(args...); r.code != 0 || r.stdout != overview {
			t.Errorf("cachier %q:\n%v", args, r)
		}
	}
	for _, c := range commands {
		for _, args := range [][]string{{"help", c.name}, {c.name, "-h"}, {c.name, "--help"}} {
			r := e.run(args...)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: cachier "+c.name) {
				t.Errorf("cachier %q:\n%v", args, r)
			}
		}
	}
}

func TestSignals(t *testing.T) {
	e := newEnv(t, "")
	script := counted + `while [ ! -f release ]; do sleep 0.02; done; echo done`

	// SIGTERM reaches the running command, which dies of it: exit 143, not recorded.
	running := e.command("run", "--", "sh", "-c", script)
	wait := e.start(running)
	eventually(t, "the command to start", func() bool { return e.count("counter") > 0 })
	if err := running.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if rr := wait(); rr.code != exitSignal+int(syscall.SIGTERM) {
		t.Fatalf("SIGTERM while the command ran: %v", rr)
	}

	// A run that waits for another leaves on SIGTERM with 128+15.
	holder := e.command("run", "--", "sh", "-c", script)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { e.touch("release"); _ = holder.Wait() }()
	eventually(t, "the holder to start the command", func() bool { return e.count("counter") == 2 })
	waiter := e.command("run", "--verbose", "--", "sh", "-c", script)
	stderr := new(lockedBuffer)
	waiter.Stderr = stderr
	wait = e.start(waiter)
	eventually(t, "the second run to wait", func() bool { return strings.Contains(stderr.String(), "waiting for another computation") })
	if err := waiter.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if wr := wait(); wr.code != exitSignal+int(syscall.SIGTERM) || !strings.Contains(stderr.String(), "while waiting") {
		t.Fatalf("SIGTERM while waiting: %v\n%s", wr, stderr)
	}
	if n := e.count("counter"); n != 2 {
		t.Fatalf("the command executed %d times, want 2", n)
	}
	e.touch("release")
	if err := holder.Wait(); err != nil {
		t.Fatal(err)
	}
	if r := e.run("run", "--", "sh", "-c", script); r.stdout != "done\n" || e.count("counter") != 2 {
		t.Fatalf("the holder's run was not recorded: %v", r)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
