package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
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

// ErrUnreachable reports a store whose server did not answer when Open checked it.
var ErrUnreachable = errors.New("store: server does not answer")

// A Pinger is a store that can check that its server answers. Open calls Ping
// before it returns a store, unless the URL says lazy=1.
type Pinger interface {
	// Ping returns nil once the server has answered a request that needs the
	// configured database, bucket and credentials to work.
	Ping(ctx context.Context) error
}

// OpenCheckTimeout bounds how long Open waits for a server to answer.
const OpenCheckTimeout = 3 * time.Second

// lazyParam is the query parameter that skips Open's check.
const lazyParam = "lazy"

// Open opens the store a URL names, such as file:///var/cache/cachier, mem://,
// redis://localhost:6379/0 or postgres://localhost/app. The store's package must be
// imported (for its init) for its schemes to be known. Errors about the URL itself
// match ErrBadURL; the URL's credentials never appear in an error.
//
// Open checks that the server answers (see Pinger), within OpenCheckTimeout or ctx's
// deadline if that is sooner; an error matching ErrUnreachable names the server and
// says what to check. The parameter lazy=1, accepted by every scheme, skips the check
// and connects on first use, as the drivers' own constructors do.
// Under a done ctx, Open opens nothing and returns ctx.Err().
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL cut where it stopped reading, which may split a
		// password: quote the whole URL, redacted, instead.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		msg := quoted.ReplaceAllString(err.Error(), "(a part of it)")
		return nil, fmt.Errorf("%w: %s does not parse: %s", ErrBadURL, Redact(strconv.Quote(rawURL)), Redact(msg))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: %s has no scheme; use one of %s", ErrBadURL, Redact(strconv.Quote(rawURL)), strings.Join(Schemes(), ", "))
	}
	openersMu.RLock()
	open, ok := openers[strings.ToLower(u.Scheme)]
	openersMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: unknown scheme %q in %q; known: %s (import the store's package to register more)",
			ErrBadURL, Redact(u.Scheme), RedactURL(u), strings.Join(Schemes(), ", "))
	}
	lazy, err := takeLazy(u)
	if err == nil {
		err = ctx.Err() // a store opened under a done context is not wanted
	}
	if err != nil {
		return nil, err
	}
	st, err := open(ctx, u)
	if err != nil {
		return nil, err
	}
	if !lazy {
		if err := Ping(ctx, st, u); err != nil {
			_ = st.Close()
			return nil, err
		}
	}
	return Adapt(st), nil
}

// Ping checks that st's server answers, if st is a Pinger, within OpenCheckTimeout.
// Its error matches ErrUnreachable (and the cause), names u without credentials
// and says what to check.
func Ping(ctx context.Context, st Driver, u *url.URL) error {
	p, ok := Unwrap(st).(Pinger)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, OpenCheckTimeout)
	defer cancel()
	err := p.Ping(ctx)
	if err == nil {
		return nil
	}
	where := "the server"
	if u != nil {
		where = RedactURL(u)
		if u.Host != "" {
			where = fmt.Sprintf("%s (host %s)", where, Redact(u.Host))
		}
	}
	return fmt.Errorf("%w: %s: %s; check that the server runs and is reachable from here, and the address, port, credentials and database in the URL (or add %s=1 to connect on first use)",
		ErrUnreachable, where, Redact(err.Error()), lazyParam)
}

// takeLazy removes the lazy parameter from u's query and returns its value.
func takeLazy(u *url.URL) (bool, error) {
	if !strings.Contains(u.RawQuery, lazyParam) {
		return false, nil
	}
	var keep []string
	lazy, seen := false, false
	for part := range strings.SplitSeq(u.RawQuery, "&") {
		name, val, _ := strings.Cut(part, "=")
		if name != lazyParam {
			keep = append(keep, part)
			continue
		}
		b, err := strconv.ParseBool(val)
		if err != nil || seen {
			return false, BadURL(u, "%s=%q: give it once, as 1 (connect on first use) or 0 (check the server at Open, the default)", lazyParam, val)
		}
		lazy, seen = b, true
	}
	u.RawQuery = strings.Join(keep, "&")
	return lazy, nil
}

// quoted matches a Go-quoted string in an error message.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// userinfo matches "user:password@" after anything that starts a URL, even one that
// does not parse or whose scheme is missing or mistyped: "scheme://", "//",
// "scheme:/", "scheme:", or the start of a word. The password runs to the last "@"
// before white space, so one holding "@" or "/" is hidden whole.
var userinfo = regexp.MustCompile(`((?:^|[^A-Za-z0-9+.\-])(?:[A-Za-z][A-Za-z0-9+.\-]*:)?/{0,3}[^\s/?#@:"'=&]*:)(?:(?:[^\s/]|/[^\s/])[^\s]*)?@`)

// schemeUserinfo matches "anything://" and everything after it up to the last '@'
// before white space. Whether "x://y@" is a scheme and a user name or a user name and a
// password that starts with "//" cannot be told apart, so both are hidden: a user name
// is lost from a message, never a password.
var schemeUserinfo = regexp.MustCompile(`((?:^|[^A-Za-z0-9+.\-])[^\s/?#@:"'=&]*://)[^\s]*@`)

// quotedUserinfo matches a quoted string that holds a URL's userinfo, for a password
// with white space in it ("redis://u:pass word@h", as url.Parse quotes it): from the
// first ':' after the scheme to the last '@' in the string, whatever the user name
// holds.
var quotedUserinfo = regexp.MustCompile(`("(?:[A-Za-z][A-Za-z0-9+.\-]*:)?/{0,3}[^:"]*:)(?:[^"\\]|\\.)*@`)

// secretParam matches a query parameter that carries a credential in some scheme,
// and its value: password, sslpassword, sentinel_password, secret_key,
// aws_secret_access_key, access_key, session_token, token, authMechanismProperties
// (which may hold an AWS session token), sslkey and the like.
var secretParam = regexp.MustCompile(`(?i)((?:^|[^A-Za-z0-9_.\-])` + secretName + `=)(?:[^&\s"'#;]*)`)

const secretName = `(?:[A-Za-z0-9_.\-]*(?:pass|secret|token|pwd|credential|signature|authmechanismproperties)[A-Za-z0-9_.\-]*|[A-Za-z0-9_.\-]*key)`

var secretNameRE = regexp.MustCompile(`(?i)^` + secretName + `$`)

// IsSecretParam reports whether a URL query parameter of that name carries a
// credential, so that messages show "xxxxx" for its value: any name containing
// pass, secret, token, pwd, credential or signature, or ending in key.
func IsSecretParam(name string) bool { return secretNameRE.MatchString(name) }

// Redact hides credentials in text that may hold store URLs: the password of
// "user:password@" (after "scheme://", "//", "scheme:/" or "scheme:", so in URLs that
// do not parse too) and the value of every credential-bearing query parameter (see
// IsSecretParam) become "xxxxx". Errors and log messages pass through it.
func Redact(s string) string {
	s = quotedUserinfo.ReplaceAllString(s, "${1}xxxxx@")
	s = userinfo.ReplaceAllString(s, "${1}xxxxx@")
	s = schemeUserinfo.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasSuffix(m, ":xxxxx@") {
			return m // a password already hidden, user name kept
		}
		return schemeUserinfo.ReplaceAllString(m, "${1}xxxxx@")
	})
	return secretParam.ReplaceAllString(s, "${1}xxxxx")
}

// RedactURL returns u for messages: the password and the values of
// credential-bearing query parameters become "xxxxx", as does anything in the rest
// of the URL that looks like "user:password@".
func RedactURL(u *url.URL) string {
	if u == nil {
		return "<nil>"
	}
	c := *u
	if c.User != nil {
		if _, ok := c.User.Password(); ok {
			c.User = url.UserPassword(c.User.Username(), "xxxxx")
		}
	}
	c.RawQuery = redactQuery(c.RawQuery)
	c.Opaque = redactLoose(c.Opaque) // redis:u:pw@h
	if p := redactLoose(c.Path); p != c.Path {
		c.Path, c.RawPath = p, "" // redis:/u:pw@h
	}
	return Redact(c.String())
}

// redactLoose hides "user:password@" in a part of a URL that holds nothing else
// worth keeping around it, from the first ':' to the last '@', whatever is between.
func redactLoose(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	r := quotedUserinfo.ReplaceAllString(`"`+s+`"`, "${1}xxxxx@")
	return Redact(r[1 : len(r)-1])
}

// redactQuery hides the values of credential-bearing parameters in a raw query, and
// any value that holds "user:password@" once unescaped (an endpoint URL with
// credentials), keeping the rest as written.
func redactQuery(raw string) string {
	if raw == "" {
		return raw
	}
	parts := strings.Split(raw, "&")
	for i, part := range parts {
		name, val, ok := strings.Cut(part, "=")
		n, err := url.QueryUnescape(name)
		if err != nil {
			n = name
		}
		v, err := url.QueryUnescape(val)
		if err != nil {
			v = val
		}
		switch {
		case ok && IsSecretParam(n):
			parts[i] = name + "=xxxxx"
		case Redact(v) != v || Redact(val) != val:
			parts[i] = name + "=xxxxx"
		}
	}
	return Redact(strings.Join(parts, "&"))
}

// secrets returns the credentials u carries, in the forms a message may show them.
func secrets(u *url.URL) []string {
	var out []string
	add := func(v string) {
		if len(v) >= 3 {
			out = append(out, v, url.QueryEscape(v), url.PathEscape(v))
		}
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			add(p)
		}
	}
	if q, err := url.ParseQuery(u.RawQuery); err == nil {
		for name, vals := range q {
			if IsSecretParam(name) {
				for _, v := range vals {
					add(v)
				}
			}
		}
	}
	return out
}

// BadURL returns an error matching ErrBadURL that names u without its credentials
// and says what is wrong: "store: bad URL: redis://u:xxxxx@h/0: pool_size -1 is not
// an integer from 1 to 10000". A credential of u that the message quotes is hidden
// too. Drivers' URL parsers use it for every error.
func BadURL(u *url.URL, format string, args ...any) error {
	msg := Redact(fmt.Sprintf(format, args...))
	if u == nil {
		return fmt.Errorf("%w: %s", ErrBadURL, msg)
	}
	for _, sec := range secrets(u) {
		msg = strings.ReplaceAll(msg, sec, "xxxxx")
	}
	return fmt.Errorf("%w: %s: %s", ErrBadURL, RedactURL(u), msg)
}
