package store

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Params reads the query of a store URL for a driver's URL parser, one parameter at a
// time, so that every driver says the same things the same way: a parameter given
// twice, a value that does not parse and (when the driver lists what it accepts) an
// unknown name are errors matching [ErrBadURL] that name the URL without credentials
// (see [BadURL]), the parameter, and what to give instead.
//
// The typed readers record the first error and leave their destination alone when the
// parameter is absent or bad; Err returns that error once the parser has read
// everything.
type Params struct {
	u    *url.URL
	q    url.Values
	err  error
	seen map[string]bool
}

// ReadParams parses u's query. When accepted is not empty, a name outside it is an
// error that lists them, and so is any name given more than once. A parser that
// passes other parameters on to a client library (see [Params.Rest]) lists none;
// the parameters it reads itself must then still be given once.
func ReadParams(u *url.URL, accepted ...string) (*Params, error) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, BadURL(u, "query: %s", Redact(err.Error()))
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // the same error for the same URL
	for _, name := range names {
		if len(accepted) > 0 && !slices.Contains(accepted, name) {
			return nil, BadURL(u, "unknown parameter %q; accepted: %s", name, strings.Join(slices.Sorted(slices.Values(accepted)), ", "))
		}
		if n := len(q[name]); n != 1 && len(accepted) > 0 {
			return nil, BadURL(u, "parameter %q given %d times; give it once", name, n)
		}
	}
	return &Params{u: u, q: q, seen: map[string]bool{}}, nil
}

// Has reports whether the URL gives name.
func (p *Params) Has(name string) bool { return p.q.Has(name) }

// String returns the value of name, or "" when the URL does not give it.
func (p *Params) String(name string) string {
	p.seen[name] = true
	if n := len(p.q[name]); n > 1 {
		p.fail("parameter %q given %d times; give it once", name, n)
	}
	return p.q.Get(name)
}

// Rest returns the parameters no reader has asked for, for a client library that
// reads its own options from a URL.
func (p *Params) Rest() url.Values {
	rest := url.Values{}
	for name, vals := range p.q {
		if !p.seen[name] {
			rest[name] = vals
		}
	}
	return rest
}

// fail records the first error.
func (p *Params) fail(format string, args ...any) {
	if p.err == nil {
		p.err = BadURL(p.u, format, args...)
	}
}

// Check reads name with check, which says what is wrong with a value, into *dst.
func (p *Params) Check(name string, dst *string, check func(string) error) {
	if !p.Has(name) {
		return
	}
	v := p.String(name)
	if err := check(v); err != nil {
		p.fail("%s: %v", name, err)
		return
	}
	*dst = v
}

// Duration reads name, a positive duration such as 500ms or 2s, into *dst.
func (p *Params) Duration(name string, dst *time.Duration) {
	if !p.Has(name) {
		return
	}
	v := p.String(name)
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail("%s=%q is not a positive duration; give one such as 500ms or 2s", name, v)
		return
	}
	*dst = d
}

// Int reads name, a whole number from lo to hi, into *dst.
func (p *Params) Int(name string, lo, hi int, dst *int) {
	if !p.Has(name) {
		return
	}
	v := p.String(name)
	n, err := strconv.Atoi(v)
	switch {
	case err == nil && n >= lo && n <= hi:
		*dst = n
	case hi >= math.MaxInt32:
		p.fail("%s=%q is not a whole number of at least %d", name, v, lo)
	default:
		p.fail("%s=%q is not a whole number from %d to %d", name, v, lo, hi)
	}
}

// Bool reads name, true or false (or 1 or 0), into *dst.
func (p *Params) Bool(name string, dst *bool) {
	if !p.Has(name) {
		return
	}
	v := p.String(name)
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail("%s=%q is not a boolean; give true or false", name, v)
		return
	}
	*dst = b
}

// Size reads name, a byte count such as 1048576, 512KiB or 64MB (see [ParseSize]),
// into *dst.
func (p *Params) Size(name string, dst *int64) {
	if !p.Has(name) {
		return
	}
	n, err := ParseSize(p.String(name))
	if err != nil {
		p.fail("%s: %v", name, err)
		return
	}
	*dst = n
}

// OneOf reads name, one of choices in any case, into *dst, upper-cased as choices
// are written.
func (p *Params) OneOf(name string, dst *string, choices ...string) {
	if !p.Has(name) {
		return
	}
	v := p.String(name)
	i := slices.IndexFunc(choices, func(c string) bool { return strings.EqualFold(c, v) })
	if i < 0 {
		p.fail("%s=%q is not one of %s", name, v, strings.Join(choices, ", "))
		return
	}
	*dst = choices[i]
}

// Err returns the first error a reader met, or nil.
func (p *Params) Err() error { return p.err }

// sizeUnits maps the (lower-cased) suffixes ParseSize accepts to their multipliers.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseSize parses a byte count: a whole number >= 0 with an optional suffix B, KB,
// MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), in any case.
func ParseSize(s string) (int64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits, unit := s[:i], strings.ToLower(s[i:])
	mult, ok := sizeUnits[unit]
	if digits == "" || !ok {
		return 0, fmt.Errorf("size %q is not a whole number of bytes with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// CheckPrefix says what is wrong with a key prefix for an engine whose keys are
// printable ASCII: longer than most bytes, or holding a space, a control or non-ASCII
// byte, or a byte of forbidden. An empty prefix is fine.
func CheckPrefix(p string, most int, forbidden string) error {
	if len(p) > most {
		return fmt.Errorf("prefix of %d bytes is longer than %d", len(p), most)
	}
	for i := range len(p) {
		if c := p[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(forbidden, c) >= 0 {
			return fmt.Errorf("prefix %q may hold only printable ASCII without spaces%s", p, without(forbidden))
		}
	}
	return nil
}

func without(forbidden string) string {
	if forbidden == "" {
		return ""
	}
	return " and " + strconv.Quote(forbidden)
}
