package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cachier-go/cachier/store"
	_ "github.com/cachier-go/cachier/store/all" // every store's URL scheme
)

// Exit statuses of cachier's own failures. A command run by "cachier run" exits with
// its own status, which may collide with these; --verbose tells them apart.
const (
	exitOK          = 0
	exitFailure     = 1   // anything not listed below
	exitUsage       = 2   // bad subcommand, flag or argument
	exitStore       = 3   // bad store URL, store unreachable, store operation failed
	exitUnsupported = 4   // the store cannot do it (memcached cannot list), or not yet implemented
	exitNotExec     = 126 // the command was found but could not be executed
	exitNotFound    = 127 // the command was not found
	exitSignal      = 128 // + signal number: the command (or cachier while waiting) was killed by a signal
)

// envStore names the environment variable holding the default store URL.
const envStore = "CACHIER_STORE"

// defaultStoreURL is the file store in its default directory.
const defaultStoreURL = "file://"

func main() {
	m := NewMain()
	err := m.Run(context.Background(), os.Args[1:])
	os.Exit(m.Report(err))
}

// Main is the cachier command: its I/O and environment, so that tests can drive it
// in the process.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (CACHIER_STORE and the other flag defaults).
	Getenv func(string) string
	// Now is the clock of pruning; nil means time.Now.
	Now func() time.Time

	// secrets are the passwords of the store URLs seen, scrubbed from every message.
	secrets []string
}

// NewMain returns a Main on the process's standard streams and environment.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// exitError is an error with the exit status it calls for. A nil err exits silently
// (a command's own non-zero status).
type exitError struct {
	code  int
	err   error
	usage *command // for usage errors: the command whose usage follows the message
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitWith returns an error that exits with code, saying nothing.
func exitWith(code int) error { return &exitError{code: code} }

// usageError reports a bad subcommand, flag or argument; the usage of cmd (or the
// overview, if nil) follows the message.
func usageError(cmd *command, format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...), usage: cmd}
}

// storeError reports a failed store operation.
func storeError(err error) error { return &exitError{code: exitStore, err: err} }

// unsupportedError reports something the store (or cachier) cannot do.
func unsupportedError(err error) error { return &exitError{code: exitUnsupported, err: err} }

// errHelp is returned when help was asked for and printed.
var errHelp = errors.New("help requested")

// Run runs the command line args (without the program name).
func (m *Main) Run(ctx context.Context, args []string) error {
	r, err := m.parse(args)
	if err != nil {
		return err
	}
	verbose := false
	if rc, ok := r.(*runConfig); ok {
		verbose = rc.verbose
	}
	m.quietRedis(verbose)
	return r.run(ctx, m)
}

// Report prints err, if any, to Stderr (with the usage for usage errors, and with
// every known password scrubbed) and returns the exit status it calls for.
func (m *Main) Report(err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	fmt.Fprintln(m.Stderr, "cachier: "+m.redact(err.Error()))
	if ee != nil && ee.code == exitUsage {
		if ee.usage != nil {
			fmt.Fprintf(m.Stderr, "\n%s", ee.usage.help())
		} else {
			fmt.Fprintf(m.Stderr, "\n%s", overview)
		}
	}
	return code
}

// redact removes every password of a store URL from s.
func (m *Main) redact(s string) string {
	s = store.Redact(s)
	for _, p := range m.secrets {
		s = strings.ReplaceAll(s, p, "xxxxx")
	}
	return s
}

// runner is a parsed command line, ready to run.
type runner interface {
	run(ctx context.Context, m *Main) error
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // the synopsis and description, before the flags
	// flags declares the flags on fs and returns the parser of the remaining
	// arguments, which builds the runner.
	flags func(m *Main, fs *flag.FlagSet, self *command) func(args []string) (runner, error)
}

// commands are the subcommands, in the order help lists them; init fills it to
// break the reference cycle with help.
var commands []*command

func init() {
	commands = []*command{runCmd, lsCmd, rmCmd, statsCmd, clearCmd, unlockCmd, gcCmd, invalidateCmd, helpCmd}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// help returns the command's usage: synopsis, description and flags.
func (c *command) help() string {
	var b strings.Builder
	b.WriteString(c.usage)
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.flags(&Main{}, fs, c)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nFlags:\n")
		fs.SetOutput(&b)
		fs.PrintDefaults()
	}
	return b.String()
}

// parse turns a command line into a runner without touching any store or process.
func (m *Main) parse(args []string) (runner, error) {
	if len(args) == 0 {
		return nil, usageError(nil, "no subcommand given")
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		return helpRunner{}, nil
	}
	c := lookup(name)
	if c == nil {
		if strings.HasPrefix(name, "-") {
			return nil, usageError(nil, "flag %s before the subcommand; flags follow it, as in cachier ls --store URL", quote(name))
		}
		return nil, usageError(nil, "unknown subcommand %s; run cachier help for the list", quote(name))
	}
	fs := flag.NewFlagSet("cachier "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // cachier prints its own messages and usage
	rest := c.flags(m, fs, c)
	if err := m.applyEnvDefaults(fs); err != nil {
		return nil, usageError(c, "%s: %v", c.name, err)
	}
	// Flags may follow the arguments ("cachier clear NS --store URL"), except in
	// run, where everything from CMD on belongs to CMD.
	flags, positional := splitArgs(fs, args[1:], c == runCmd)
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return helpRunner{cmd: c}, nil
		}
		return nil, usageError(c, "%s: %v", c.name, err)
	}
	return rest(append(fs.Args(), positional...))
}

// quote quotes s for a message if it holds anything unusual, and shortens it.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	q := fmt.Sprintf("%q", s)
	if q[1:len(q)-1] == s && s != "" && !strings.ContainsAny(s, " \t") {
		return s
	}
	return q
}

// storeFlag declares --store on fs and returns where it lands. Its default is empty
// (see storeURL), so that usage never prints a URL from the environment.
func storeFlag(fs *flag.FlagSet) *string {
	return fs.String("store", "", "store `URL` (default: $"+envStore+", else the file store, file://); schemes: "+strings.Join(store.Schemes(), ", "))
}

// storeURL returns the store URL to use: the flag's, else $CACHIER_STORE, else the
// file store.
func (m *Main) storeURL(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if m.Getenv != nil {
		if v := m.Getenv(envStore); v != "" {
			return v
		}
	}
	return defaultStoreURL
}

// openStore opens the store at rawURL, remembering its password so that no message
// prints it.
func (m *Main) openStore(ctx context.Context, rawURL string) (store.Store, error) {
	if p := urlPassword(rawURL); p != "" {
		m.secrets = append(m.secrets, p)
	}
	st, err := store.Open(ctx, rawURL)
	if err != nil {
		return nil, storeError(fmt.Errorf("open store %s: %w", displayURL(rawURL), err))
	}
	return st, nil
}
