package main

import (
	"errors"
	"path"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "90s": 90 * time.Second, "1h30m": 90 * time.Minute, "1d": 24 * time.Hour,
		"1d12h": 36 * time.Hour, "1.5d": 36 * time.Hour, "-1d": -24 * time.Hour, "2d30m": 48*time.Hour + 30*time.Minute,
	} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1w", "soon", "1d-1h", "1h1d", "nand", "1e3d", "--1d", "1d1d", "99999999999999d"} {
		_, err := parseDuration(in)
		if !errors.Is(err, errDuration) || !strings.Contains(err.Error(), "1d12h") {
			t.Errorf("parseDuration(%q) error %v, want one naming the accepted forms", in, err)
		}
	}
}

// FuzzParseDuration checks that parseDuration never panics, agrees with
// time.ParseDuration on what that accepts, and round-trips through formatDuration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1d", "1d12h", "-1.5d", "90s", "0", "d", "1e308d", "+1d", "1d-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err != nil {
			return
		}
		if !strings.Contains(s, "d") {
			if want, err := time.ParseDuration(s); err != nil || want != d {
				t.Fatalf("parseDuration(%q) = %v, time.ParseDuration = %v, %v", s, d, want, err)
			}
		}
		back, err := parseDuration(formatDuration(d))
		if err != nil || back != d {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", s, d, formatDuration(d), back, err)
		}
	})
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "1K": 1024, "1.5M": 3 << 19, "2G": 2 << 30, "1GiB": 1 << 30, "1t": 1 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "1X", "1e99G", "inf"} {
		if _, err := parseSize(in); err == nil || !strings.Contains(err.Error(), "500K") {
			t.Errorf("parseSize(%q) error %v", in, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1G", "1.5M", "0", "1e3", "9223372036854775807", "1KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		if err == nil {
			v := sizeValue(n)
			if back, err := parseSize(v.String()); err != nil || back != n {
				t.Fatalf("round trip %d -> %q -> %d, %v", n, v.String(), back, err)
			}
		}
	})
}

func TestMatchGlob(t *testing.T) {
	for _, c := range []struct {
		pat, name string
		want      bool
	}{
		{"**/*.go", "a.go", true}, {"**/*.go", "x/y/a.go", true}, {"*.go", "x/a.go", false},
		{"x/**/a.go", "x/a.go", true}, {"x/**/a.go", "x/1/2/a.go", true}, {"x/**", "x/1/2", true},
		{"x/**/b/*.go", "x/1/b/c.go", true}, {"x/**/b/*.go", "x/1/c/c.go", false}, {"[a-c].txt", "b.txt", true},
	} {
		if got := matchGlob(strings.Split(c.pat, "/"), strings.Split(c.name, "/")); got != c.want {
			t.Errorf("matchGlob(%q, %q) = %v", c.pat, c.name, got)
		}
	}
}

// FuzzMatchGlob checks that matching never panics, that without ** it agrees with
// path.Match, and that validateGlob accepts what path.Match can parse.
func FuzzMatchGlob(f *testing.F) {
	for _, s := range [][2]string{{"**/*.go", "a/b.go"}, {"a/[b-", "a/b"}, {"**", ""}, {"x/**/y", "x/y"}, {`\`, `\`}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		err := validateGlob(pat)
		got := matchGlob(strings.Split(pat, "/"), strings.Split(name, "/"))
		if err != nil || strings.Contains(pat, "**") || strings.Contains(pat, `\`) {
			return
		}
		if want, merr := path.Match(pat, name); merr == nil && want != got {
			t.Fatalf("matchGlob(%q, %q) = %v, path.Match = %v", pat, name, got, want)
		}
	})
}
