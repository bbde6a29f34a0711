package memstore

import (
	"context"
	"fmt"
	"math"
	"net/url"
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
	opts := &Options{}
	p, err := store.ReadParams(u, "max_entries", "max_bytes")
	if err == nil {
		p.Int("max_entries", 0, math.MaxInt, &opts.MaxEntries)
		p.Size("max_bytes", &opts.MaxBytes)
		if p.Has("max_bytes") && opts.MaxBytes == 0 {
			opts.MaxBytes = NoBound // as the URL help says: 0 means no bound
		}
		err = p.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("%w; %s", err, urlHelp)
	}
	return opts, nil
}

// ParseSize is [store.ParseSize].
func ParseSize(s string) (int64, error) { return store.ParseSize(s) }
