package memstore

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cachier-go/cachier/store"
)

// Scheme is the URL scheme memstore registers with store.Open.
const Scheme = "mem"

func init() {
	store.Register(func(_ context.Context, u *url.URL) (store.Store, error) {
		opts, err := ParseURL(u)
		if err != nil {
			return nil, err
		}
		return store.Adapt(New(opts)), nil
	}, Scheme)
}

const urlHelp = "use mem:// (bounded to 256MiB) or mem://?max_entries=N&max_bytes=SIZE (SIZE in bytes, or with a suffix KB, MB, GB, KiB, MiB, GiB; max_bytes=0 for no bound)"

// ParseURL turns a mem:// URL into Options. It accepts only the query parameters
// max_entries (a count) and max_bytes (a size such as 1048576, 512KiB or 64MiB), each
// at most once; anything else is an error matching store.ErrBadURL.
func ParseURL(u *url.URL) (*Options, error) {
	if !strings.EqualFold(u.Scheme, Scheme) {
		return nil, fmt.Errorf("%w: memstore cannot open scheme %q; %s", store.ErrBadURL, u.Scheme, urlHelp)
	}
	if u.Opaque != "" || u.Host != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, fmt.Errorf("%w: %q: mem takes no host, user, path or fragment; %s", store.ErrBadURL, store.RedactURL(u), urlHelp)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: bad query: %v; %s", store.ErrBadURL, store.RedactURL(u), err, urlHelp)
	}
	opts := &Options{}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic errors
	for _, name := range names {
		vals := q[name]
		if len(vals) != 1 {
			return nil, fmt.Errorf("%w: %q: %s given %d times; give it once", store.ErrBadURL, store.RedactURL(u), name, len(vals))
		}
		v := vals[0]
		switch name {
		case "max_entries":
			n, err := strconv.ParseInt(v, 10, 0)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: %q: max_entries=%q is not a count; give a whole number >= 0 (0 means no bound)",
					store.ErrBadURL, store.RedactURL(u), v)
			}
			opts.MaxEntries = int(n)
		case "max_bytes":
			n, err := ParseSize(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %q: max_bytes: %v", store.ErrBadURL, store.RedactURL(u), err)
			}
			opts.MaxBytes = n
			if n == 0 {
				opts.MaxBytes = NoBound // as the URL help says: 0 means no bound
			}
		default:
			return nil, fmt.Errorf("%w: %q: unknown parameter %q; mem accepts max_entries and max_bytes; %s",
				store.ErrBadURL, store.RedactURL(u), name, urlHelp)
		}
	}
	return opts, nil
}

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
