package filestore

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"path/filepath"

	"github.com/cachier-go/cachier/store"
)

func init() { store.Register(openURL, "file") }

// urlHelp says what a file URL may hold; every URL error repeats it.
const urlHelp = "want file:///absolute/path or file:// (the default directory), " +
	"with optional parameters fsync=1, poll=<duration>, allow_shared_dir=1, max_bytes=<size>, max_entries=<n>"

// openURL opens a Store from a file URL:
//
//	file://                         DefaultDir()
//	file:///var/cache/cachier       that directory
//	file:///var/cache/app?fsync=1   with Options.Fsync
//
// Parameters: fsync (bool), poll (a time.Duration, Options.PollInterval),
// allow_shared_dir (bool), max_bytes (a size such as 512MiB, Options.MaxBytes) and
// max_entries (a count, Options.MaxEntries). Anything else, a host other than localhost, or a relative
// path is an error matching store.ErrBadURL.
func openURL(_ context.Context, u *url.URL) (store.Store, error) {
	bad := func(format string, args ...any) error {
		return store.BadURL(u, "%s; %s", fmt.Sprintf(format, args...), urlHelp)
	}
	if u.Opaque != "" {
		return nil, bad("relative path %q", u.Opaque)
	}
	if u.User != nil {
		return nil, bad("user information is not allowed")
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, bad("host %q (only local directories)", u.Host)
	}
	if u.Fragment != "" {
		return nil, bad("fragment %q", u.Fragment)
	}
	var o Options
	if u.Path != "" {
		if !filepath.IsAbs(u.Path) {
			return nil, bad("relative path %q", u.Path)
		}
		o.Dir = filepath.Clean(u.Path)
	}
	p, err := store.ReadParams(u, "fsync", "poll", "allow_shared_dir", "max_bytes", "max_entries")
	if err != nil {
		return nil, fmt.Errorf("%w; %s", err, urlHelp)
	}
	p.Bool("fsync", &o.Fsync)
	p.Bool("allow_shared_dir", &o.AllowSharedDir)
	p.Size("max_bytes", &o.MaxBytes)
	p.Int("max_entries", 0, math.MaxInt, &o.MaxEntries)
	p.Duration("poll", &o.PollInterval)
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("%w; %s", err, urlHelp)
	}
	s, err := New(&o)
	if err != nil {
		return nil, err
	}
	return store.Adapt(s), nil
}
