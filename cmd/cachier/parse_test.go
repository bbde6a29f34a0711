package main

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
	"time"
)

// FuzzParseArgs checks that no command line makes parsing panic, that parsing
// either yields something to run or a usage error, and that reporting the error
// never panics either.
func FuzzParseArgs(f *testing.F) {
	seeds := []string{
		"",
		"run\x00--\x00echo\x00hi",
		"run\x00--stale-after=1h\x00--next-time\x00--key-env\x00HOME\x00sh\x00-c\x00true",
		"run\x00--max-age=-1s\x00--force\x00--skip\x00x",
		"run\x00--name=\x00x",
		"run\x00--wait-timeout\x00-1s",
		"ls\x00--json\x00--stale-after\x0010m\x00ns",
		"ls\x00a\x00b",
		"gc\x00--older-than=720h\x00a\x00b",
		"gc\x00--older-than",
		"clear\x00--store\x00redis://:pw@h:1/0\x00ns",
		"unlock\x00ns",
		"stats\x00--json",
		"invalidate\x00--tag=t",
		"help\x00run",
		"-h",
		"--store=mem://",
		"run\x00-h",
		"run\x00--key-env=\x00x",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		var stdout, stderr bytes.Buffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
		r, err := m.parse(args)
		if err != nil {
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage {
				t.Fatalf("parse(%q) = %v, want a usage error", args, err)
			}
			if code := m.Report(err); code != exitUsage || stderr.Len() == 0 {
				t.Fatalf("Report: exit %d, stderr %q", code, stderr.String())
			}
			return
		}
		if r == nil {
			t.Fatalf("parse(%q) returned neither a runner nor an error", args)
		}
		if rc, ok := r.(*runConfig); ok {
			if err := rc.validate(); err != nil {
				t.Fatalf("parse accepted an invalid run: %v", err)
			}
			_ = rc.refreshArgs(false)
		}
	})
}

// TestRefreshArgsRoundTrip checks that the background refresh parses to the same run
// without --next-time.
func TestRefreshArgsRoundTrip(t *testing.T) {
	m := &Main{Getenv: func(string) string { return "" }}
	r, err := m.parse([]string{"run", "--name=ns", "--stale-after=90m", "--max-age=-1.5s", "--wait-timeout=3s",
		"--next-time", "--discard-failures", "--key-dir", "--key-env=A", "--key-env", "B", "--store=mem://", "--", "cmd", "--flag", "--"})
	if err != nil {
		t.Fatal(err)
	}
	c := r.(*runConfig)
	r2, err := m.parse(c.refreshArgs(false))
	if err != nil {
		t.Fatal(err)
	}
	c2 := r2.(*runConfig)
	if c2.nextTime || c2.force || *c2.store != "" {
		t.Fatalf("refresh has --next-time, --force or --store: %+v", c2)
	}
	c2.nextTime, c2.store = true, c.store
	if got, want := strings.Join(c2.refreshArgs(false), " "), strings.Join(c.refreshArgs(false), " "); got != want {
		t.Fatalf("refresh args do not round-trip:\n got %s\nwant %s", got, want)
	}
	if c2.name != "ns" || c2.staleAfter != 90*time.Minute || c2.maxAge != -1500*time.Millisecond || !c2.maxAgeSet ||
		c2.waitTimeout != 3*time.Second || !c2.discardFailures || !c2.keyDir ||
		strings.Join(c2.keyEnv, ",") != "A,B" || strings.Join(c2.argv, " ") != "cmd --flag --" {
		t.Fatalf("refresh parsed to %+v", c2)
	}
}

// TestDocMatchesHelp keeps the package doc (go doc) and cachier help in step.
func TestDocMatchesHelp(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := (&ast.CommentGroup{List: f.Doc.List}).Text()
	want := "Command " + overview
	if !strings.HasPrefix(doc, want) {
		t.Fatalf("doc.go does not start with the help text.\n--- doc:\n%s\n--- want prefix:\n%s", doc, want)
	}
}

func TestURLPassword(t *testing.T) {
	for _, c := range []struct{ url, pw string }{
		{"redis://:secret@host:1/0", "secret"},
		{"redis://user:secret@host:1/0", "secret"},
		{"redis://user@host:1/0", ""},
		{"redis://:secret@[::1", "secret"},
		{"redis://:sec@ret@127.0.0.1:1/%zz", "sec@ret"},
		{"postgres://u:p%zz@h/db", "p%zz"},
		{"file:///tmp/x", ""},
		{"no scheme", ""},
	} {
		if got := urlPassword(c.url); got != c.pw {
			t.Errorf("urlPassword(%q) = %q, want %q", c.url, got, c.pw)
		}
		if c.pw != "" && strings.Contains(displayURL(c.url), c.pw) {
			t.Errorf("displayURL(%q) = %q shows the password", c.url, displayURL(c.url))
		}
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{printable("abc"), "abc"},
		{printable("a\tb"), `"a\tb"`},
		{printable("\x1b[31mred"), `"\x1b[31mred"`},
		{printable("\xff"), `"\xff"`},
		{printable(""), `""`},
		{formatBytes(0), "0 B"},
		{formatBytes(1023), "1023 B"},
		{formatBytes(1536), "1.5 KiB"},
		{formatBytes(5 << 20), "5.0 MiB"},
		{formatAge(850 * time.Millisecond), "850ms"},
		{formatAge(5*time.Minute + 3*time.Second + 400*time.Millisecond), "5m3s"},
		{formatAge(100 * time.Hour), "4d4h"},
		{formatAge(-2 * time.Second), "-2s"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
