package store_test

import (
	"context"
	"errors"
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
		"user only: mongodb://ann@h/db":                "user only: mongodb://ann@h/db",
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
		if len(pw) < 6 || strings.ContainsAny(pw, "@ \t\n\r\v\f\u0085\u00a0") || strings.ContainsAny(user, ":@/?#") {
			t.Skip()
		}
		s := "redis://" + user + ":" + pw + "@h/0 and more"
		r := store.Redact(s)
		if strings.Contains(r, pw) && !strings.Contains("redis://"+user+":xxxxx@h/0 and more", pw) {
			t.Fatalf("Redact(%q) = %q keeps the password", s, r)
		}
	})
}
