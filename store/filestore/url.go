package filestore

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

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
		return fmt.Errorf("%w: %q: %s; %s", store.ErrBadURL, store.RedactURL(u), fmt.Sprintf(format, args...), urlHelp)
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
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, bad("query: %v", err)
	}
	for name, vals := range q {
		if len(vals) != 1 {
			return nil, bad("parameter %s given %d times", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "fsync", "allow_shared_dir":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, bad("%s=%q is not a boolean", name, v)
			}
			if name == "fsync" {
				o.Fsync = b
			} else {
				o.AllowSharedDir = b
			}
		case "max_bytes":
			n, err := parseSize(v)
			if err != nil {
				return nil, bad("max_bytes: %v", err)
			}
			o.MaxBytes = n
		case "max_entries":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, bad("max_entries=%q is not a count >= 0", v)
			}
			o.MaxEntries = n
		case "poll":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, bad("poll=%q is not a positive duration", v)
			}
			o.PollInterval = d
		default:
			return nil, bad("unknown parameter %q", name)
		}
	}
	s, err := New(&o)
	if err != nil {
		return nil, err
	}
	return store.Adapt(s), nil
}
