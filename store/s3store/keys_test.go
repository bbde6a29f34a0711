package s3store

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cachier-go/cachier/store"
)

func TestAppendName(t *testing.T) {
	tests := []struct {
		in       string
		two      bool
		want     string
		wantLong bool // only check the form
	}{
		{in: "abc", want: "abc"},
		{in: "main.fetchReport", want: "main.fetchReport"},
		{in: "github.com/x/y.F", want: "github.com%2Fx%2Fy.F"},
		{in: ".", want: "%2E"},
		{in: "..", want: "%2E."},
		{in: ".hidden", want: "%2Ehidden"},
		{in: "~x", want: "%7Ex"},
		{in: "a%2Fb", want: "a%252Fb"},
		{in: "é", want: "%C3%A9"},
		{in: "a b", want: "a%20b"},
		{in: "../../etc", want: "%2E.%2F..%2Fetc"},
		{in: strings.Repeat("x", 200), want: strings.Repeat("x", 200)},
		{in: strings.Repeat("x", 201), wantLong: true},
		{in: strings.Repeat("/", 67), wantLong: true},
		{in: strings.Repeat("/", 66), want: strings.Repeat("%2F", 66)},
		{in: strings.Repeat("é", 100), two: true, wantLong: true},
	}
	for _, tc := range tests {
		got := string(appendName(nil, tc.in, tc.two))
		if tc.wantLong {
			if !strings.HasPrefix(got, "~") {
				t.Errorf("appendName(%q) = %q, want the long form", tc.in, got)
			}
		} else if got != tc.want {
			t.Errorf("appendName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := parseName(got, tc.two)
		if err != nil || back != tc.in {
			t.Errorf("parseName(%q) = %q, %v; want %q", got, back, err, tc.in)
		}
	}
}

func TestParseNameRejectsForeign(t *testing.T) {
	for _, name := range []string{
		"", "%", "%2", "%zz", "%2f", // bad or lowercase escapes
		"%41",             // an escaped safe character
		".x",              // unescaped leading dot
		"a/b",             // a slash in the short form
		"~YWJj",           // a long form of a string that has a short form
		"~!!", "~", "a b", // garbage
		"%FF",             // not UTF-8
		"%C3%A9/x", "a~b", // '~' inside the short form
	} {
		if s, err := parseName(name, false); err == nil {
			t.Errorf("parseName(%q) = %q, want an error", name, s)
		}
	}
}

// TestNameLimits checks the worst cases against S3's and MinIO's limits.
func TestNameLimits(t *testing.T) {
	prefix := strings.Repeat("p", maxPrefixLen-1) + "/"
	if _, err := validatePrefix(prefix); err != nil {
		t.Fatalf("validatePrefix of the longest prefix: %v", err)
	}
	if _, err := validatePrefix(prefix + "x"); err == nil {
		t.Fatalf("validatePrefix accepted %d bytes", len(prefix)+2)
	}
	s := &Store{prefix: prefix}
	worst := []string{
		strings.Repeat("\x01", store.MaxIDLen),
		strings.Repeat("\U0001F600", store.MaxIDLen/4),
		strings.Repeat("/", store.MaxIDLen),
		strings.Repeat(".", store.MaxIDLen),
		strings.Repeat("x", store.MaxIDLen),
		".", "..", "x",
	}
	for _, ns := range worst {
		if len(ns) > store.MaxNamespaceLen {
			ns = ns[:store.MaxNamespaceLen]
			for !utf8.ValidString(ns) {
				ns = ns[:len(ns)-1]
			}
		}
		for _, id := range worst {
			// The portable layer's lease records live in namespace "\x01"+ns.
			for _, ns := range []string{ns, store.InternalPrefix + ns} {
				name := s.objectName(store.Key{Namespace: ns, ID: id})
				if len(name) > 1024 {
					t.Errorf("name of %d bytes for ns %.10q id %.10q", len(name), ns, id)
				}
				for seg := range strings.SplitSeq(name, "/") {
					if len(seg) > 255 || seg == "" || seg == "." || seg == ".." {
						t.Errorf("bad segment %.20q (%d bytes) in the name for ns %.10q id %.10q", seg, len(seg), ns, id)
					}
				}
				pfx := s.nsPrefix(ns)
				if !strings.HasPrefix(name, pfx) {
					t.Fatalf("name %q does not start with its namespace prefix %q", name, pfx)
				}
				if got, err := parseName(strings.TrimPrefix(name, pfx), false); err != nil || got != id {
					t.Errorf("parseName of the ID part of %.40q = %.10q, %v", name, got, err)
				}
			}
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "cachier/"},
		{"app", "app/"},
		{"app/", "app/"},
		{"a/b/c", "a/b/c/"},
		{"/abs", ""},
		{"a//b", ""},
		{"a/./b", ""},
		{"../x", ""},
		{"a\x00b", ""},
		{"a\\b", ""},
		{"\xff", ""},
	}
	for _, tc := range tests {
		got, err := validatePrefix(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("validatePrefix(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("validatePrefix(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzName checks that names round-trip, fit their limits, and never collide.
func FuzzName(f *testing.F) {
	for _, s := range []string{"a", ".", "..", "~", "%", "a/b", "é", strings.Repeat("/", 200), strings.Repeat("x", 500)} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, two := range []bool{false, true} {
			na, nb := string(appendName(nil, a, two)), string(appendName(nil, b, two))
			if a != b && na == nb {
				t.Fatalf("%q and %q share the name %q", a, b, na)
			}
			if a == "" || !utf8.ValidString(a) {
				continue
			}
			back, err := parseName(na, two)
			if err != nil || back != a {
				t.Fatalf("parseName(%q) = %q, %v; want %q", na, back, err, a)
			}
			if limit := map[bool]int{false: store.MaxIDLen, true: store.MaxNamespaceLen}[two]; len(a) <= limit {
				for seg := range strings.SplitSeq(na, "/") {
					if len(seg) > 255 || seg == "" || seg == "." || seg == ".." {
						t.Fatalf("bad segment %q in %q", seg, na)
					}
				}
			}
		}
		// parseName never panics on anything, and what it accepts is canonical.
		if s, err := parseName(a, false); err == nil && string(appendName(nil, s, false)) != a {
			t.Fatalf("parseName accepted the non-canonical %q", a)
		}
	})
}
