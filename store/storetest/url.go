package storetest

import (
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
