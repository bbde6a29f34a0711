package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/store"
)

// runRecord is what ls and rm read of a recorded run: its command line and working
// directory (not its output).
type runRecord struct {
	Argv     []string
	Dir      string
	ExitCode int
}

// readRecord reads the run recorded at k, if the entry is one: an entry of another
// kind, or one recorded before runs carried their command line, has no Argv.
func readRecord(ctx context.Context, st store.Store, k store.Key) (runRecord, bool) {
	var r runRecord
	e, err := st.Get(ctx, k)
	if err != nil {
		return r, false
	}
	c, _, payload, err := envelope.Open(e.Value)
	if err != nil || c != envelope.CBOR {
		return r, false
	}
	if err := cachier.CBOR.Unmarshal(payload, &r); err != nil || len(r.Argv) == 0 {
		return runRecord{}, false
	}
	return r, true
}

// shellQuote joins argv as a POSIX shell would read it back.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// shortID is the prefix of an entry ID that ls shows; rm takes any unique prefix.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ---- rm ----

var rmCmd = &command{
	name:    "rm",
	summary: "remove recorded runs, by ID or by command line",
	usage: `Usage: cachier rm [flags] ID...
       cachier rm [flags] --command -- CMD [ARGS...]

Removes recorded runs of "cachier run" from the namespace (--name, default
cachier-run): each ID (or unique ID prefix) that "cachier ls cachier-run" shows, or,
with --command, every recorded run of exactly CMD ARGS, whatever its working
directory. Nothing matching is an error (exit 1).
`,
	flags: func(m *Main, fs *flag.FlagSet, self *command) func([]string) (runner, error) {
		r := &rmRunner{}
		r.declare(fs)
		fs.StringVar(&r.name, "name", defaultRunNamespace, "the `namespace` of the recorded runs")
		fs.BoolVar(&r.command, "command", false, "the arguments are a command line, not IDs")
		return func(args []string) (runner, error) {
			if len(args) == 0 {
				if r.command {
					return nil, usageError(self, "rm: give the command line after --, as in cachier rm --command -- make test")
				}
				return nil, usageError(self, "rm: give the IDs to remove (cachier ls %s shows them), or --command -- CMD [ARGS...]", defaultRunNamespace)
			}
			if err := store.ValidateNamespace(r.name); err != nil {
				return nil, usageError(self, "rm: --name %s: %v", quote(r.name), err)
			}
			if !r.command {
				for _, id := range args {
					if len(id) < 4 {
						return nil, usageError(self, "rm: ID %s is too short; give at least 4 characters of it", quote(id))
					}
				}
			}
			r.args = args
			return r, nil
		}
	},
}

type rmRunner struct {
	storeCmd
	name    string
	command bool
}

// removedJSON is a removed run in the JSON output of rm.
type removedJSON struct {
	ID      string   `json:"id"`
	Command []string `json:"command,omitempty"`
	Dir     string   `json:"dir,omitempty"`
}

func (r *rmRunner) run(ctx context.Context, m *Main) error {
	st, url, err := r.open(ctx, m)
	if err != nil {
		return err
	}
	defer st.Close()
	var infos []store.Info
	for info, err := range st.Entries(ctx, r.name) {
		if err != nil {
			return opError(url, "list the entries of "+quote(r.name), err)
		}
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b store.Info) int { return cmp.Compare(a.Key.ID, b.Key.ID) })
	var victims []removedJSON
	if r.command {
		for _, info := range infos {
			if rec, ok := readRecord(ctx, st, info.Key); ok && slices.Equal(rec.Argv, r.args) {
				victims = append(victims, removedJSON{ID: info.Key.ID, Command: rec.Argv, Dir: rec.Dir})
			}
		}
		if len(victims) == 0 {
			return &exitError{code: exitFailure, err: fmt.Errorf("rm: nothing matched: no recorded run of %s in %s on %s", quote(shellQuote(r.args)), quote(r.name), url)}
		}
	} else {
		for _, id := range r.args {
			var match []store.Info
			for _, info := range infos {
				if strings.HasPrefix(info.Key.ID, id) {
					match = append(match, info)
				}
			}
			switch len(match) {
			case 0:
				return &exitError{code: exitFailure, err: fmt.Errorf("rm: nothing matched ID %s in %s on %s (cachier ls %s lists them)", quote(id), quote(r.name), url, r.name)}
			case 1:
			default:
				return usageError(rmCmd, "rm: ID %s matches %d entries; give more of it", quote(id), len(match))
			}
			rec, _ := readRecord(ctx, st, match[0].Key)
			victims = append(victims, removedJSON{ID: match[0].Key.ID, Command: rec.Argv, Dir: rec.Dir})
		}
	}
	for _, v := range victims {
		if err := st.Delete(ctx, store.Key{Namespace: r.name, ID: v.ID}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return opError(url, "remove "+quote(v.ID), err)
		}
		if !r.json {
			what := ""
			if len(v.Command) > 0 {
				what = ": " + printableLine(shellQuote(v.Command)) + " in " + printable(v.Dir)
			}
			fmt.Fprintf(m.Stdout, "removed %s%s\n", printable(shortID(v.ID)), what)
		}
	}
	if r.json {
		return writeJSON(m.Stdout, struct {
			Removed []removedJSON `json:"removed"`
		}{victims})
	}
	return nil
}
