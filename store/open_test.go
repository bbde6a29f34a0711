package store_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cachier-go/cachier/store"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://:secret@127.0.0.1:1/0":                "redis://:xxxxx@127.0.0.1:1/0",
		"dial postgres://u:p%zz@h/db: refused":         "dial postgres://u:xxxxx@h/db: refused",
		`parse "redis://:secret@127.0.0.1:1/%zz": bad`: `parse "redis://:xxxxx@127.0.0.1:1/%zz": bad`,
		"no credentials in file:///tmp/x":              "no credentials in file:///tmp/x",
		"user only: mongodb://ann@h/db":                "user only: mongodb://xxxxx@h/db", // a user alone cannot be told from a password starting with "//"
	} {
		if got := store.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpenBadURLs(t *testing.T) {
	for _, u := range []string{"", "nothing", "redis://:secret@127.0.0.1:1/%zz", "nosuchscheme://x"} {
		_, err := store.Open(context.Background(), u)
		if !errors.Is(err, store.ErrBadURL) {
			t.Errorf("Open(%q) = %v, want ErrBadURL", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) leaked the password: %v", u, err)
		}
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("ann", "s3cr3tpw")
	f.Add("", "hunter22")
	f.Fuzz(func(t *testing.T, user, pw string) {
		if len(pw) < 6 || strings.ContainsAny(pw, "@ \t\n\r\v\f\u0085\u00a0") || strings.ContainsAny(user, ":@/?# \t\n\r\v\f\u0085\u00a0") {
			t.Skip()
		}
		s := "redis://" + user + ":" + pw + "@h/0 and more"
		r := store.Redact(s)
		if strings.Contains(r, pw) && !strings.Contains("redis://"+user+":xxxxx@h/0 and more", pw) {
			t.Fatalf("Redact(%q) = %q keeps the password", s, r)
		}
	})
}

// TestRedactMalformed: a password is hidden in URLs that do not parse, or whose
// scheme is missing or mistyped (issue 10 finding 9), and in query parameters.
func TestRedactMalformed(t *testing.T) {
	for _, in := range []string{
		"//u:pw1234@h", "redis//u:pw1234@h", "redis:/u:pw1234@h", "redis:u:pw1234@h",
		`parse "redis://u:pw1234 with space@h/0": net/url: invalid userinfo`,
		"redis://u:pw1234@with@at@h/0", "redis://u:pw1234/slash@h/0",
		"postgres://h/db?sslmode=disable&password=pw1234", "postgres://h/db?sslpassword=pw1234",
		"redis+sentinel://h/0?master=m&sentinel_password=pw1234", "s3://b?aws_secret_access_key=pw1234&secret_key=pw1234",
		"mongodb://h/db?authMechanismProperties=AWS_SESSION_TOKEN:pw1234", "x?token=pw1234",
	} {
		got := store.Redact(in)
		if strings.Contains(got, "pw1234") || strings.Contains(got, "space") || strings.Contains(got, "slash") {
			t.Errorf("Redact(%q) = %q keeps the password", in, got)
		}
		if u, err := url.Parse(in); err == nil {
			if got := store.RedactURL(u); strings.Contains(got, "pw1234") {
				t.Errorf("RedactURL(%q) = %q keeps the password", in, got)
			}
		}
	}
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0 key main.f@v2/abc": "redis://127.0.0.1:6379/0 key main.f@v2/abc",
		"dial tcp 127.0.0.1:1: connection refused":   "dial tcp 127.0.0.1:1: connection refused",
		"postgres://h/db?sslmode=disable":            "postgres://h/db?sslmode=disable",
	} {
		if got := store.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want it unchanged", in, got)
		}
	}
}

// TestOpenNeverLeaks: Open's errors for URLs that do not parse, or lack or mistype
// their scheme, hide the password (issue 10 finding 9).
func TestOpenNeverLeaks(t *testing.T) {
	for _, u := range []string{
		"redis://u:pw1234/x@h/0", "redis://u:pw1234 space@h/0", "00:pw1234#x@h", "redis//u:pw1234@h",
		"redis:/u:pw1234@h", "redis:u:pw1234@h", "//u:pw1234@h", "nosuch://u:pw1234@h/?password=pw1234",
	} {
		_, err := store.Open(context.Background(), u)
		if err == nil || strings.Contains(err.Error(), "pw1234") || strings.Contains(err.Error(), "space") {
			t.Errorf("Open(%q) = %v; want an error without the password", u, err)
		}
	}
}
