package storetest

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cachier-go/cachier/store"
)

// MustParseURL is url.Parse for tables of store URLs: it stops the test if raw does
// not parse.
func MustParseURL(tb testing.TB, raw string) *url.URL {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatalf("url.Parse(%q): %v", raw, err)
	}
	return u
}

// CheckBadURL checks the error a store's URL parser returned for raw, a URL it must
// reject: the error matches store.ErrBadURL, its text contains want, and it never
// contains secret (the URL's password), as store.Open promises. An empty want or secret
// is not looked for. It reports what is wrong with tb.Errorf and returns whether all
// was right.
func CheckBadURL(tb testing.TB, raw string, err error, want, secret string) bool {
	tb.Helper()
	ok := true
	if !errors.Is(err, store.ErrBadURL) || !strings.Contains(err.Error(), want) {
		tb.Errorf("parsing %q: %v; want an error matching store.ErrBadURL containing %q", raw, err, want)
		ok = false
	}
	if err != nil && secret != "" && strings.Contains(err.Error(), secret) {
		tb.Errorf("parsing %q: the error leaks the password: %v", raw, err)
		ok = false
	}
	return ok
}

// FuzzURL is the fuzz target of a store's URL parser, seeded with seeds: the parser
// never panics, every error matches store.ErrBadURL and shows no password of the URL
// (unless the URL shows it elsewhere too), and accepted, if not nil, checks what it
// accepted.
func FuzzURL[C any](f *testing.F, seeds []string, parse func(*url.URL) (C, error), accepted func(t *testing.T, raw string, c C)) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		c, err := parse(u)
		if err != nil {
			if !errors.Is(err, store.ErrBadURL) {
				t.Fatalf("parsing %q: %v does not match store.ErrBadURL", raw, err)
			}
			if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Contains(err.Error(), pw) &&
				!strings.Contains(strings.ReplaceAll(raw, u.User.String(), ""), pw) {
				t.Fatalf("parsing %q: the error shows the password: %v", raw, err)
			}
			return
		}
		if accepted != nil {
			accepted(t, raw, c)
		}
	})
}

// Opened opens raw with store.Open and returns the store and the driver under it as
// a D, stopping the test if either fails. The store is closed when the test ends, and
// an error from Close fails the test.
func Opened[D any](tb testing.TB, raw string) (store.Store, D) {
	tb.Helper()
	s, err := store.Open(context.Background(), raw)
	if err != nil {
		tb.Fatalf("store.Open(%q): %v", store.Redact(raw), err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close of the store of %q: %v", store.Redact(raw), err)
		}
	})
	d, ok := store.Unwrap(s).(D)
	if !ok {
		tb.Fatalf("store.Open(%q) opened a %T, want a %T", store.Redact(raw), store.Unwrap(s), d)
	}
	return s, d
}
