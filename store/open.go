package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// ErrBadURL reports a store URL that cannot be opened: malformed, an unknown scheme,
// or a parameter the store does not know.
var ErrBadURL = errors.New("store: bad URL")

// Opener opens a store from a parsed URL. The store owns whatever client it creates,
// and closes it in Close. A driver's opener returns store.Adapt(driver); Open adapts
// whatever it is given in any case.
type Opener func(ctx context.Context, u *url.URL) (Store, error)

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes a store available to Open under the given URL schemes. Store
// packages call it from init, as database/sql drivers do; a program that wants every
// store imports package github.com/cachier-go/cachier/store/all. Registering a scheme
// twice replaces the earlier opener.
func Register(open Opener, schemes ...string) {
	openersMu.Lock()
	defer openersMu.Unlock()
	for _, s := range schemes {
		openers[strings.ToLower(s)] = open
	}
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	openersMu.RLock()
	defer openersMu.RUnlock()
	s := make([]string, 0, len(openers))
	for k := range openers {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Open opens the store a URL names, such as file:///var/cache/cachier, mem://,
// redis://localhost:6379/0 or postgres://localhost/app. The store's package must be
// imported (for its init) for its schemes to be known. Errors about the URL itself
// match ErrBadURL; the URL's password never appears in an error.
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadURL, Redact(err.Error()))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: %q has no scheme; use one of %s", ErrBadURL, Redact(rawURL), strings.Join(Schemes(), ", "))
	}
	openersMu.RLock()
	open, ok := openers[strings.ToLower(u.Scheme)]
	openersMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: unknown scheme %q in %q; known: %s (import the store's package to register more)",
			ErrBadURL, u.Scheme, u.Redacted(), strings.Join(Schemes(), ", "))
	}
	st, err := open(ctx, u)
	if err != nil {
		return nil, err
	}
	return Adapt(st), nil
}

// userinfo matches the password part of "scheme://user:password@", even in a URL
// that does not parse.
var userinfo = regexp.MustCompile(`(://[^/?#@:]*:)[^@\s]*@`)

// Redact replaces the password of any URL found in s with "xxxxx", so errors and logs
// never carry credentials. It works on text that is not a valid URL too.
func Redact(s string) string {
	return userinfo.ReplaceAllString(s, "${1}xxxxx@")
}
