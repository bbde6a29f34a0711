package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlagsAfterArguments checks that flags after the arguments act (finding 10):
// clear with --store after the namespace clears that store, not the default one.
func TestFlagsAfterArguments(t *testing.T) {
	e := newEnv(t, "")
	other := "file://" + filepath.ToSlash(t.TempDir())
	if r := e.run("run", "--", "sh", "-c", counted+"echo default"); r.code != 0 {
		t.Fatal(r)
	}
	if r := e.run("run", "--store", other, "--", "sh", "-c", counted+"echo other"); r.code != 0 {
		t.Fatal(r)
	}
	r := e.run("clear", defaultRunNamespace, "--store", other, "--json")
	var out struct{ Cleared []string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out.Cleared) != 1 {
		t.Fatalf("clear NS --store URL --json: %v", r)
	}
	// The default store still replays; the other executes again.
	if r := e.run("run", "--", "sh", "-c", counted+"echo default"); r.stdout != "default\n" || e.count("counter") != 2 {
		t.Fatalf("the default store was cleared: %v, count %d", r, e.count("counter"))
	}
	if r := e.run("run", "--store", other, "--", "sh", "-c", counted+"echo other"); r.stdout != "other\n" || e.count("counter") != 3 {
		t.Fatalf("the other store was not cleared: %v, count %d", r, e.count("counter"))
	}
	// In run, flags after CMD are CMD's.
	if r := e.run("run", "echo", "--store", "x"); r.stdout != "--store x\n" {
		t.Fatalf("run CMD --flag: %v", r)
	}
}

// TestRunFailsOpen checks that run executes the command live, warns once and exits
// with its status when the store is down.
func TestRunFailsOpen(t *testing.T) {
	// Redis that refuses connections fails on the first operation; a file store
	// whose directory cannot be made fails when it is opened.
	for _, url := range []string{"redis://:secret@127.0.0.1:1/0", "file:///dev/null/cachier"} {
		t.Run(url[:5], func(t *testing.T) { testRunFailsOpen(t, newEnv(t, url)) })
	}
}

func testRunFailsOpen(t *testing.T, e *env) {
	for i := 1; i <= 2; i++ {
		r := e.run("run", "--", "sh", "-c", counted+"echo live; echo err >&2; exit 5")
		if r.code != 5 || r.stdout != "live\n" {
			t.Fatalf("run with the store down: %v", r)
		}
		if n := strings.Count(r.stderr, "warning"); n != 1 || !strings.Contains(r.stderr, "without the cache") || !strings.HasSuffix(r.stderr, "err\n") {
			t.Fatalf("want one warning, then the command's stderr: %v", r)
		}
		if strings.Contains(r.stderr, "secret") {
			t.Fatalf("the password was printed: %v", r)
		}
		if e.count("counter") != i {
			t.Fatalf("the command ran %d times, want %d", e.count("counter"), i)
		}
	}
	// --next-time asks the store first: it fails open too.
	if r := e.run("run", "--next-time", "--stale-after=1h", "--", "sh", "-c", counted+"echo live"); r.code != 0 || r.stdout != "live\n" {
		t.Fatalf("--next-time with the store down: %v", r)
	}
}

// TestStdinKey checks that stdin is not part of the key by default, and is with
// --stdin, which still passes it to the command.
func TestStdinKey(t *testing.T) {
	e := newEnv(t, "")
	run := func(input string, args ...string) result {
		t.Helper()
		cmd := e.command(args...)
		cmd.Stdin = strings.NewReader(input)
		return e.wait(cmd)
	}
	if r := run("abc\n", "run", "--", "tr", "a-z", "A-Z"); r.stdout != "ABC\n" {
		t.Fatal(r)
	}
	if r := run("xyz\n", "run", "--", "tr", "a-z", "A-Z"); r.stdout != "ABC\n" {
		t.Fatalf("without --stdin, stdin is not part of the key (documented): %v", r)
	}
	if r := run("xyz\n", "run", "--stdin", "--", "tr", "a-z", "A-Z"); r.stdout != "XYZ\n" {
		t.Fatalf("--stdin: %v", r)
	}
	if r := run("abc\n", "run", "--stdin", "--", "sh", "-c", counted+"tr a-z A-Z"); r.stdout != "ABC\n" {
		t.Fatalf("--stdin: %v", r)
	}
	if r := run("abc\n", "run", "--stdin", "--", "sh", "-c", counted+"tr a-z A-Z"); r.stdout != "ABC\n" || e.count("counter") != 1 {
		t.Fatalf("--stdin with the same input did not replay: %v, count %d", r, e.count("counter"))
	}
}

// TestKeyFile checks --key-file: a replay until a matching file changes, ** globs,
// and the digest cache keyed by path, size and modification time.
func TestKeyFile(t *testing.T) {
	e := newEnv(t, "")
	write := func(name, content string, mtime time.Time) {
		t.Helper()
		p := filepath.Join(e.work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	write("src/a.go", "package a", old)
	write("src/deep/er/b.go", "package b", old)
	write("src/notes.txt", "x", old)
	run := func() result {
		t.Helper()
		return e.run("run", "--key-file", "src/**/*.go", "--", "sh", "-c", counted+"wc -l < counter | tr -d ' '")
	}
	if r := run(); r.stdout != "1\n" {
		t.Fatal(r)
	}
	if r := run(); r.stdout != "1\n" {
		t.Fatalf("unchanged sources did not replay: %v", r)
	}
	write("src/notes.txt", "changed", old)
	if r := run(); r.stdout != "1\n" {
		t.Fatalf("a file outside the glob changed the key: %v", r)
	}
	write("src/deep/er/b.go", "package b // changed", old.Add(time.Minute))
	if r := run(); r.stdout != "2\n" {
		t.Fatalf("a change under ** did not execute again: %v", r)
	}
	write("src/c.go", "package c", old)
	if r := run(); r.stdout != "3\n" {
		t.Fatalf("a new matching file did not execute again: %v", r)
	}
	// Same size and modification time: the cached digest stands (the cache is
	// used, not every file re-read).
	write("src/a.go", "package x", old)
	if r := run(); r.stdout != "3\n" {
		t.Fatalf("the digest cache was not used: %v", r)
	}
	// A file changed within the racy window is hashed again each time, never cached.
	now := time.Now()
	write("src/a.go", "package y", now)
	if r := run(); r.stdout != "4\n" {
		t.Fatalf("a fresh change was not seen: %v", r)
	}
	write("src/a.go", "package z", now)
	if r := run(); r.stdout != "5\n" {
		t.Fatalf("a change in the racy window was hidden by the digest cache: %v", r)
	}
}

// TestWarm checks that --warm prints nothing, exits at once, and records the run in
// the background.
func TestWarm(t *testing.T) {
	e := newEnv(t, "")
	script := counted + `wc -l < counter | tr -d ' '`
	if r := e.run("run", "--warm", "--", "sh", "-c", script); r != (result{}) {
		t.Fatalf("--warm printed something or failed: %v", r)
	}
	eventually(t, "the warm run to execute", func() bool { return e.count("counter") == 1 })
	eventually(t, "the warm run to be recorded", func() bool {
		return e.run("ls", "--json", defaultRunNamespace).stdout != "" && strings.Contains(e.run("ls", "--json", defaultRunNamespace).stdout, `"command"`)
	})
	if r := e.run("run", "--", "sh", "-c", script); r.stdout != "1\n" || e.count("counter") != 1 {
		t.Fatalf("the warmed run was not replayed: %v", r)
	}
	// --warm refreshes a recorded run.
	e.run("run", "--warm", "--", "sh", "-c", script)
	eventually(t, "the second warm run to be recorded", func() bool {
		return e.run("run", "--", "sh", "-c", script).stdout == "2\n"
	})
}

// TestEnvDefaults checks that the environment gives the main flags their defaults
// and that the command line wins.
func TestEnvDefaults(t *testing.T) {
	e := newEnv(t, "")
	e.extraEnv = []string{"CACHIER_SCOPE=scoped", "CACHIER_STALE_AFTER=1d"}
	script := counted + `wc -l < counter | tr -d ' '`
	e.run("run", "--", "sh", "-c", script)
	if r := e.run("ls", "scoped"); !strings.Contains(r.stdout, "sh -c") {
		t.Fatalf("CACHIER_SCOPE did not name the namespace: %v", r)
	}
	if r := e.run("run", "--name", "other", "--", "sh", "-c", script); r.stdout != "2\n" {
		t.Fatalf("--name did not win over CACHIER_SCOPE: %v", r)
	}
	e.extraEnv = []string{"CACHIER_TTL=soon"}
	if r := e.run("run", "--", "true"); r.code != exitUsage || !strings.Contains(r.stderr, "CACHIER_TTL") {
		t.Fatalf("a bad environment default: %v", r)
	}
}

// TestListAndRemoveRuns checks that ls shows recorded command lines with their
// directory, and that rm removes one by ID or by command line.
func TestListAndRemoveRuns(t *testing.T) {
	e := newEnv(t, "")
	e.run("run", "--", "echo", "one")
	e.run("run", "--", "sh", "-c", "echo two")
	r := e.run("ls", defaultRunNamespace)
	wd, _ := filepath.EvalSymlinks(e.work)
	for _, want := range []string{"COMMAND", "echo one", "sh -c 'echo two'", "DIR"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("ls does not show %q:\n%v", want, r)
		}
	}
	if !strings.Contains(r.stdout, e.work) && !strings.Contains(r.stdout, wd) {
		t.Fatalf("ls does not show the working directory %s:\n%v", e.work, r)
	}
	var js struct {
		Entries []struct {
			ID      string
			Command []string
			Dir     string
		}
	}
	if err := json.Unmarshal([]byte(e.run("ls", "--json", defaultRunNamespace).stdout), &js); err != nil || len(js.Entries) != 2 {
		t.Fatalf("ls --json: %v %+v", err, js)
	}
	var oneID string
	for _, en := range js.Entries {
		if strings.Join(en.Command, " ") == "echo one" {
			oneID = en.ID
		}
	}
	if r := e.run("rm", oneID[:12]); r.code != 0 || !strings.Contains(r.stdout, "echo one") {
		t.Fatalf("rm ID: %v", r)
	}
	if r := e.run("rm", "--command", "--", "sh", "-c", "echo two"); r.code != 0 || !strings.Contains(r.stdout, "echo two") {
		t.Fatalf("rm --command: %v", r)
	}
	if r := e.run("ls", defaultRunNamespace); !strings.Contains(r.stdout, "no entries") {
		t.Fatalf("entries left after rm: %v", r)
	}
}

// TestPrune checks that run prunes its namespace: entries older than --prune-after
// at most once per pruneEvery, and the oldest beyond --max-size. The clock is Main's,
// moved by hand.
func TestPrune(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	storeURL := "file://" + filepath.ToSlash(dir)
	now := time.Now()
	m := &Main{Stdin: strings.NewReader(""), Stdout: new(lockedBuffer), Stderr: new(lockedBuffer), Getenv: func(string) string { return "" },
		Now: func() time.Time { return now }}
	run := func(args ...string) {
		t.Helper()
		if err := m.Run(context.Background(), append([]string{"run", "--store", storeURL, "--"}, args...)); err != nil {
			t.Fatalf("run %q: %v", args, err)
		}
	}
	count := func() int {
		t.Helper()
		n := 0
		entries, _ := filepath.Glob(filepath.Join(dir, defaultRunNamespace, "*", "*"))
		for _, p := range entries {
			if !strings.HasPrefix(filepath.Base(p), ".") {
				n++
			}
		}
		return n
	}
	run("true", "1")
	run("true", "2")
	if count() != 2 {
		t.Fatalf("%d entries, want 2", count())
	}
	// 29 days later, nothing is old enough.
	now = now.Add(29 * 24 * time.Hour)
	run("true", "3")
	if count() != 3 {
		t.Fatalf("%d entries after 29 days, want 3", count())
	}
	// 30 days and a minute later, every entry recorded 30 days before goes (all of
	// them: the store's own clock recorded them at the real time).
	now = now.Add(24*time.Hour + time.Minute)
	run("true", "4")
	if count() != 0 {
		t.Fatalf("%d entries after pruning, want 0", count())
	}
	// Within an hour of the last pruning, nothing is pruned.
	now = now.Add(30 * time.Minute)
	run("true", "5")
	if count() != 1 {
		t.Fatalf("pruned again within the hour: %d entries, want 1", count())
	}
	now = now.Add(time.Hour)
	run("true", "6")
	if count() != 0 {
		t.Fatalf("%d entries after pruning an hour later, want 0", count())
	}
	// --prune-after 0 turns it off.
	run("true", "6")
	now = now.Add(365 * 24 * time.Hour)
	if err := m.Run(context.Background(), []string{"run", "--store", storeURL, "--prune-after", "0", "--max-size", "0", "--", "true", "7"}); err != nil {
		t.Fatal(err)
	}
	if count() != 2 {
		t.Fatalf("--prune-after 0 pruned: %d entries, want 2", count())
	}
	// --max-size keeps the newest entries within the size.
	now = now.Add(2 * time.Hour)
	if err := m.Run(context.Background(), []string{"run", "--store", storeURL, "--prune-after", "0", "--max-size", "1", "--", "true", "8"}); err != nil {
		t.Fatal(err)
	}
	if count() != 0 {
		t.Fatalf("--max-size 1 left %d entries", count())
	}
}
