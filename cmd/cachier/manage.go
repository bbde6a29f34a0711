package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// progressThreshold is the number of namespaces from which gc reports progress.
const progressThreshold = 10

// storeCmd is the shape of the commands that act on a store: --store, --json and
// some namespaces.
type storeCmd struct {
	store *string
	json  bool
	args  []string
}

func (s *storeCmd) declare(fs *flag.FlagSet) {
	s.store = storeFlag(fs)
	fs.BoolVar(&s.json, "json", false, "print JSON for scripts instead of a table")
}

// open opens the store and wraps a listing or operation error with the store's
// (redacted) URL and the exit status it calls for.
func (s *storeCmd) open(ctx context.Context, m *Main) (store.Store, string, error) {
	u := m.storeURL(*s.store)
	st, err := m.openStore(ctx, u)
	return st, displayURL(u), err
}

// opError wraps err from operation op on the store at url.
func opError(url, op string, err error) error {
	if errors.Is(err, errors.ErrUnsupported) {
		return unsupportedError(fmt.Errorf("%s: not supported by the store %s: %w", op, url, err))
	}
	return storeError(fmt.Errorf("%s on %s: %w", op, url, err))
}

func validateNamespaces(cmd *command, names []string) error {
	for _, ns := range names {
		if err := store.ValidateNamespace(ns); err != nil {
			return usageError(cmd, "%s: namespace %s: %v", cmd.name, quote(ns), err)
		}
	}
	return nil
}

// ---- ls ----

var lsCmd = &command{
	name:    "ls",
	summary: "list namespaces, or the entries and leases of one",
	usage: `Usage: cachier ls [flags] [NAMESPACE]

Without NAMESPACE, lists the namespaces with their entry counts and sizes. With it,
lists its entries (ID, size, age and, with --stale-after, whether each is fresh or
stale) and its calculation leases in progress (owner host and PID, time left).
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		l := &lsRunner{}
		l.declare(fs)
		fs.Var((*durationValue)(&l.staleAfter), "stale-after", "mark entries older than `D` stale")
		return func(args []string) (runner, error) {
			switch {
			case len(args) > 1:
				return nil, usageError(self, "ls: one namespace at most, got %d arguments", len(args))
			case l.staleAfter < 0:
				return nil, usageError(self, "ls: --stale-after %v is negative", l.staleAfter)
			}
			if err := validateNamespaces(self, args); err != nil {
				return nil, err
			}
			l.args = args
			return l, nil
		}
	},
}

type lsRunner struct {
	storeCmd
	staleAfter time.Duration
}

// nsSummary is a namespace in ls and stats; the JSON names are stable.
type nsSummary struct {
	Namespace string     `json:"namespace"`
	Entries   int        `json:"entries"`
	Bytes     int64      `json:"bytes"`
	Leases    int        `json:"leases"`
	Oldest    *time.Time `json:"oldest,omitempty"`
	Newest    *time.Time `json:"newest,omitempty"`
}

// entryJSON is an entry in ls NAMESPACE --json.
type entryJSON struct {
	ID         string    `json:"id"`
	Size       int64     `json:"size"`
	StoredAt   time.Time `json:"stored_at"`
	AgeSeconds float64   `json:"age_seconds"`
	Stale      *bool     `json:"stale,omitempty"`
	Command    []string  `json:"command,omitempty"` // a recorded run's command line
	Dir        string    `json:"dir,omitempty"`     // and its working directory
}

// leaseJSON is a lease in ls NAMESPACE --json. The owner's token is left out: it is
// what lets its holder renew and release the lease.
type leaseJSON struct {
	ID               string    `json:"id"`
	Host             string    `json:"host"`
	PID              int       `json:"pid"`
	ExpiresAt        time.Time `json:"expires_at"`
	ExpiresInSeconds float64   `json:"expires_in_seconds"`
}

func (l *lsRunner) run(ctx context.Context, m *Main) error {
	st, url, err := l.open(ctx, m)
	if err != nil {
		return err
	}
	defer st.Close()
	if len(l.args) == 0 {
		sums, err := summarize(ctx, st, url)
		if err != nil {
			return err
		}
		if l.json {
			return writeJSON(m.Stdout, struct {
				Namespaces []nsSummary `json:"namespaces"`
			}{sums})
		}
		t := newTable(m.Stdout, "NAMESPACE", "ENTRIES", "SIZE")
		for _, s := range sums {
			t.row(printable(s.Namespace), strconv.Itoa(s.Entries), formatBytes(s.Bytes))
		}
		return t.flush()
	}
	return l.listNamespace(ctx, m, st, url, l.args[0])
}

func (l *lsRunner) listNamespace(ctx context.Context, m *Main, st store.Store, url, ns string) error {
	now := time.Now()
	var entries []store.Info
	for info, err := range st.Entries(ctx, ns) {
		if err != nil {
			return opError(url, "list the entries of "+quote(ns), err)
		}
		entries = append(entries, info)
	}
	slices.SortFunc(entries, func(a, b store.Info) int {
		return cmp.Or(b.StoredAt.Compare(a.StoredAt), cmp.Compare(a.Key.ID, b.Key.ID))
	})
	var leases []store.Lease
	for lease, err := range st.Leases(ctx, ns) {
		if err != nil {
			return opError(url, "list the leases of "+quote(ns), err)
		}
		leases = append(leases, lease)
	}
	slices.SortFunc(leases, func(a, b store.Lease) int { return cmp.Compare(a.Key.ID, b.Key.ID) })
	stale := func(storedAt time.Time) bool { return now.Sub(storedAt) >= l.staleAfter }
	// Recorded runs carry their command line and working directory.
	records := make([]runRecord, len(entries))
	anyRun := false
	for i, e := range entries {
		if rec, ok := readRecord(ctx, st, e.Key); ok {
			records[i], anyRun = rec, true
		}
	}

	if l.json {
		out := struct {
			Namespace string      `json:"namespace"`
			Entries   []entryJSON `json:"entries"`
			Leases    []leaseJSON `json:"leases"`
		}{Namespace: ns, Entries: []entryJSON{}, Leases: []leaseJSON{}}
		for i, e := range entries {
			j := entryJSON{ID: e.Key.ID, Size: e.Size, StoredAt: e.StoredAt.UTC(), AgeSeconds: now.Sub(e.StoredAt).Seconds(),
				Command: records[i].Argv, Dir: records[i].Dir}
			if l.staleAfter > 0 {
				s := stale(e.StoredAt)
				j.Stale = &s
			}
			out.Entries = append(out.Entries, j)
		}
		for _, le := range leases {
			out.Leases = append(out.Leases, leaseJSON{
				ID: le.Key.ID, Host: le.Owner.Host, PID: le.Owner.PID,
				ExpiresAt: le.ExpiresAt.UTC(), ExpiresInSeconds: le.ExpiresAt.Sub(now).Seconds(),
			})
		}
		return writeJSON(m.Stdout, out)
	}

	if len(entries) == 0 && len(leases) == 0 {
		fmt.Fprintf(m.Stdout, "namespace %s has no entries and no leases\n", printable(ns))
		return nil
	}
	header := []string{"ID", "SIZE", "AGE"}
	if l.staleAfter > 0 {
		header = append(header, "STATE")
	}
	if anyRun {
		header = append(header, "DIR", "COMMAND")
	}
	t := newTable(m.Stdout, header...)
	for i, e := range entries {
		id := e.Key.ID
		if anyRun {
			id = shortID(id) // cachier rm takes any unique prefix
		}
		row := []string{printable(id), formatBytes(e.Size), formatAge(now.Sub(e.StoredAt))}
		if l.staleAfter > 0 {
			row = append(row, map[bool]string{true: "stale", false: "fresh"}[stale(e.StoredAt)])
		}
		if anyRun {
			dir, cmd := "-", "-"
			if len(records[i].Argv) > 0 {
				dir, cmd = printable(records[i].Dir), printableLine(shellQuote(records[i].Argv))
			}
			row = append(row, dir, cmd)
		}
		t.row(row...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(leases) > 0 {
		fmt.Fprintf(m.Stdout, "\nleases in progress:\n")
		t := newTable(m.Stdout, "ID", "HOST", "PID", "EXPIRES IN")
		for _, le := range leases {
			t.row(printable(le.Key.ID), printable(le.Owner.Host), strconv.Itoa(le.Owner.PID), formatAge(le.ExpiresAt.Sub(now)))
		}
		return t.flush()
	}
	return nil
}

// summarize counts the entries, bytes and leases of every namespace.
func summarize(ctx context.Context, st store.Store, url string) ([]nsSummary, error) {
	names, err := st.Namespaces(ctx)
	if err != nil {
		return nil, opError(url, "list the namespaces", err)
	}
	slices.Sort(names)
	sums := make([]nsSummary, 0, len(names))
	for _, ns := range names {
		s := nsSummary{Namespace: ns}
		for info, err := range st.Entries(ctx, ns) {
			if err != nil {
				return nil, opError(url, "list the entries of "+quote(ns), err)
			}
			s.Entries++
			s.Bytes += info.Size
			t := info.StoredAt.UTC()
			if s.Oldest == nil || t.Before(*s.Oldest) {
				s.Oldest = &t
			}
			if s.Newest == nil || t.After(*s.Newest) {
				s.Newest = &t
			}
		}
		for _, err := range st.Leases(ctx, ns) {
			if err != nil {
				return nil, opError(url, "list the leases of "+quote(ns), err)
			}
			s.Leases++
		}
		sums = append(sums, s)
	}
	return sums, nil
}

// ---- stats ----

var statsCmd = &command{
	name:    "stats",
	summary: "count entries, bytes and leases per namespace",
	usage: `Usage: cachier stats [flags]

Prints, for every namespace, its entries, their total size, the leases in progress
and the ages of its oldest and newest entries, then the totals.
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		s := &statsRunner{}
		s.declare(fs)
		return func(args []string) (runner, error) {
			if len(args) > 0 {
				return nil, usageError(self, "stats takes no arguments, got %s", quote(args[0]))
			}
			return s, nil
		}
	},
}

type statsRunner struct{ storeCmd }

func (s *statsRunner) run(ctx context.Context, m *Main) error {
	st, url, err := s.open(ctx, m)
	if err != nil {
		return err
	}
	defer st.Close()
	sums, err := summarize(ctx, st, url)
	if err != nil {
		return err
	}
	total := nsSummary{Namespace: "TOTAL"}
	for _, x := range sums {
		total.Entries += x.Entries
		total.Bytes += x.Bytes
		total.Leases += x.Leases
	}
	if s.json {
		return writeJSON(m.Stdout, struct {
			Namespaces []nsSummary `json:"namespaces"`
			Entries    int         `json:"entries"`
			Bytes      int64       `json:"bytes"`
			Leases     int         `json:"leases"`
		}{sums, total.Entries, total.Bytes, total.Leases})
	}
	now := time.Now()
	age := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return formatAge(now.Sub(*t))
	}
	t := newTable(m.Stdout, "NAMESPACE", "ENTRIES", "SIZE", "LEASES", "OLDEST", "NEWEST")
	for _, x := range sums {
		t.row(printable(x.Namespace), strconv.Itoa(x.Entries), formatBytes(x.Bytes), strconv.Itoa(x.Leases), age(x.Oldest), age(x.Newest))
	}
	t.row("TOTAL", strconv.Itoa(total.Entries), formatBytes(total.Bytes), strconv.Itoa(total.Leases), "", "")
	return t.flush()
}

// ---- clear and unlock ----

var clearCmd = &command{
	name:    "clear",
	summary: "remove every entry of namespaces",
	usage: `Usage: cachier clear [flags] NAMESPACE...

Removes every entry of each NAMESPACE (cachier's clear_cache). Leases in progress are
left alone; see unlock.
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		c := &clearRunner{}
		c.declare(fs)
		return func(args []string) (runner, error) {
			if len(args) == 0 {
				return nil, usageError(self, "clear: name the namespaces to clear (cachier ls lists them)")
			}
			if err := validateNamespaces(self, args); err != nil {
				return nil, err
			}
			c.args = args
			return c, nil
		}
	},
}

type clearRunner struct{ storeCmd }

func (c *clearRunner) run(ctx context.Context, m *Main) error {
	st, url, err := c.open(ctx, m)
	if err != nil {
		return err
	}
	defer st.Close()
	// A namespace that is not in the store is reported, not "cleared": a typo must
	// not look like success. Stores that cannot list (memcached) clear blindly.
	var known map[string]bool
	if names, err := st.Namespaces(ctx); err == nil {
		known = make(map[string]bool, len(names))
		for _, n := range names {
			known[n] = true
		}
	} else if !errors.Is(err, errors.ErrUnsupported) {
		return opError(url, "list the namespaces", err)
	}
	cleared, missing := []string{}, []string{}
	for _, ns := range c.args {
		if known != nil && !known[ns] {
			missing = append(missing, ns)
			continue
		}
		if err := st.Clear(ctx, ns); err != nil {
			return opError(url, "clear "+quote(ns), err)
		}
		cleared = append(cleared, ns)
		if !c.json {
			fmt.Fprintf(m.Stdout, "cleared %s\n", printable(ns))
		}
	}
	if c.json {
		if err := writeJSON(m.Stdout, struct {
			Cleared []string `json:"cleared"`
			Missing []string `json:"missing"`
		}{cleared, missing}); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		quoted := make([]string, len(missing))
		for i, ns := range missing {
			quoted[i] = quote(ns)
		}
		return &exitError{code: exitFailure, err: fmt.Errorf("clear: nothing matched %s: no such namespace in %s (cachier ls lists them)", strings.Join(quoted, ", "), url)}
	}
	return nil
}

var unlockCmd = &command{
	name:    "unlock",
	summary: "release every calculation lease of namespaces",
	usage: `Usage: cachier unlock [flags] NAMESPACE...

Releases every calculation lease of each NAMESPACE, whoever holds it (cachier's
clear_being_calculated), so that waiters stop waiting and compute. Leases expire on
their own when their holder dies; this only makes it happen at once.
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		u := &unlockRunner{}
		u.declare(fs)
		return func(args []string) (runner, error) {
			if len(args) == 0 {
				return nil, usageError(self, "unlock: name the namespaces whose leases to release")
			}
			if err := validateNamespaces(self, args); err != nil {
				return nil, err
			}
			u.args = args
			return u, nil
		}
	},
}

type unlockRunner struct{ storeCmd }

// released is a namespace in the JSON output of unlock and gc.
type released struct {
	Namespace string `json:"namespace"`
	Count     int    `json:"count"`
}

func (u *unlockRunner) run(ctx context.Context, m *Main) error {
	st, url, err := u.open(ctx, m)
	if err != nil {
		return err
	}
	defer st.Close()
	out := make([]released, 0, len(u.args))
	for _, ns := range u.args {
		n, err := st.ReleaseAll(ctx, ns)
		if err != nil {
			return opError(url, "release the leases of "+quote(ns), err)
		}
		out = append(out, released{ns, n})
		if !u.json {
			fmt.Fprintf(m.Stdout, "released %d leases in %s\n", n, printable(ns))
		}
	}
	if u.json {
		return writeJSON(m.Stdout, struct {
			Released []released `json:"released"`
		}{out})
	}
	return nil
}

// ---- gc ----

var gcCmd = &command{
	name:    "gc",
	summary: "delete entries older than a duration",
	usage: `Usage: cachier gc --older-than D [flags] [NAMESPACE...]

Deletes the entries stored more than D ago, in each NAMESPACE or, without any, in
every namespace of the store. With many namespaces, progress goes to stderr.
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		g := &gcRunner{}
		g.declare(fs)
		fs.Var((*durationValue)(&g.olderThan), "older-than", "delete entries stored more than `D` ago (required), such as 720h")
		return func(args []string) (runner, error) {
			if g.olderThan <= 0 {
				return nil, usageError(self, "gc: give --older-than with a positive duration, such as --older-than 720h")
			}
			if err := validateNamespaces(self, args); err != nil {
				return nil, err
			}
			g.args = args
			return g, nil
		}
	},
}

type gcRunner struct {
	storeCmd
	olderThan time.Duration
}

func (g *gcRunner) run(ctx context.Context, m *Main) error {
	st, url, err := g.open(ctx, m)
	if err != nil {
		return err
	}
	defer st.Close()
	names := g.args
	if len(names) == 0 {
		if names, err = st.Namespaces(ctx); err != nil {
			return opError(url, "list the namespaces", err)
		}
		slices.Sort(names)
	}
	before := time.Now().Add(-g.olderThan)
	out := make([]released, 0, len(names))
	total := 0
	p := progress{w: m.Stderr, on: len(names) >= progressThreshold}
	for i, ns := range names {
		n, err := st.DeleteBefore(ctx, ns, before)
		if err != nil {
			p.end()
			return opError(url, "delete old entries of "+quote(ns), err)
		}
		total += n
		out = append(out, released{ns, n})
		p.show(i+1 == len(names), "gc: %d/%d namespaces, %d entries deleted", i+1, len(names), total)
	}
	p.end()
	if g.json {
		return writeJSON(m.Stdout, struct {
			Deleted    int        `json:"deleted"`
			Namespaces []released `json:"namespaces"`
		}{total, out})
	}
	fmt.Fprintf(m.Stdout, "deleted %d entries older than %v from %d namespaces\n", total, g.olderThan, len(names))
	return nil
}

// progress prints a progress line at most once a second (and the last one): in place
// on a terminal, one line each otherwise.
type progress struct {
	w     io.Writer
	on    bool
	last  time.Time
	shown bool
}

func (p *progress) show(final bool, format string, args ...any) {
	if !p.on || (!final && time.Since(p.last) < time.Second) {
		return
	}
	p.last = time.Now()
	if isTerminal(p.w) {
		fmt.Fprintf(p.w, "\r"+format, args...)
		p.shown = true
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// end finishes an in-place progress line.
func (p *progress) end() {
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ---- invalidate ----

var invalidateCmd = &command{
	name:    "invalidate",
	summary: "invalidate every entry carrying a tag or a key prefix",
	usage: `Usage: cachier invalidate [flags] (--tag T | --prefix P)...

Invalidates every entry, of every function using the store, that carries tag T
(cachier.Tags, TagsOf, ResultTags) or whose key starts with prefix P
(cachier.Prefix), in every process, by bumping one version counter per tag or
prefix: it costs the same however many entries it covers. The entries stay until
they are recomputed or garbage-collected (cachier gc).
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		i := &invalidateRunner{}
		i.declare(fs)
		fs.Func("tag", "a `tag` whose entries to invalidate (repeatable)", func(v string) error {
			if v == "" {
				return errors.New("empty tag")
			}
			i.tags = append(i.tags, v)
			return nil
		})
		fs.Func("prefix", "a key `prefix` whose entries to invalidate (repeatable)", func(v string) error {
			if v == "" {
				return errors.New("empty prefix")
			}
			i.prefixes = append(i.prefixes, v)
			return nil
		})
		return func(args []string) (runner, error) {
			switch {
			case len(args) > 0:
				return nil, usageError(self, "invalidate takes no arguments, got %s; use --tag T or --prefix P", quote(args[0]))
			case len(i.tags) == 0 && len(i.prefixes) == 0:
				return nil, usageError(self, "invalidate: give --tag T or --prefix P")
			}
			return i, nil
		}
	},
}

type invalidateRunner struct {
	storeCmd
	tags, prefixes []string
}

func (i *invalidateRunner) run(ctx context.Context, m *Main) error {
	st, url, err := i.open(ctx, m)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, ok := st.(store.Versioner); !ok {
		return unsupportedError(fmt.Errorf("invalidate: %s keeps no version counters", url))
	}
	if len(i.tags) > 0 {
		if err := cachier.InvalidateTags(ctx, st, i.tags...); err != nil {
			return opError(url, "invalidate tags", err)
		}
	}
	for _, p := range i.prefixes {
		if err := cachier.InvalidatePrefix(ctx, st, p); err != nil {
			return opError(url, "invalidate prefix "+quote(p), err)
		}
	}
	if i.json {
		return writeJSON(m.Stdout, struct {
			Tags     []string `json:"tags"`
			Prefixes []string `json:"prefixes"`
		}{i.tags, i.prefixes})
	}
	for _, t := range i.tags {
		fmt.Fprintf(m.Stdout, "invalidated tag %s\n", printable(t))
	}
	for _, p := range i.prefixes {
		fmt.Fprintf(m.Stdout, "invalidated prefix %s\n", printable(p))
	}
	return nil
}

// ---- help ----

var helpCmd = &command{
	name:    "help",
	summary: "show this help, or a command's",
	usage: `Usage: cachier help [COMMAND]
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		return func(args []string) (runner, error) {
			switch len(args) {
			case 0:
				return helpRunner{}, nil
			case 1:
				c := lookup(args[0])
				if c == nil {
					return nil, usageError(nil, "help: unknown command %s", quote(args[0]))
				}
				return helpRunner{cmd: c}, nil
			}
			return nil, usageError(self, "help takes one command at most")
		}
	},
}

// helpRunner prints the overview, or a command's usage, on stdout: help that was
// asked for is not an error.
type helpRunner struct{ cmd *command }

func (h helpRunner) run(_ context.Context, m *Main) error {
	if h.cmd == nil {
		_, err := io.WriteString(m.Stdout, overview)
		return err
	}
	_, err := io.WriteString(m.Stdout, h.cmd.help())
	return err
}
