package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// splitArgs separates the flags of a subcommand from its positional arguments, so
// that flags may come before, between or after them ("cachier clear NS --store URL").
// A "--" ends the flags: everything after it is positional. A flag that takes a value
// and is written without "=" takes the next argument as its value, as package flag
// does. Unknown flags are kept with the flags, for the flag set to report.
//
// With stopAtFirst (cachier run), the first positional argument ends the flags:
// everything from it on is the command and its own arguments.
func splitArgs(fs *flag.FlagSet, args []string, stopAtFirst bool) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return flags, append(positional, args[i+1:]...)
		case len(a) < 2 || a[0] != '-':
			if stopAtFirst {
				return flags, append(positional, args[i:]...)
			}
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil || isBoolFlag(f) || i+1 >= len(args) {
			continue
		}
		i++
		flags = append(flags, args[i])
	}
	return flags, positional
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// durationValue is a duration flag that also accepts days ("1d", "1d12h", "1.5d").
type durationValue time.Duration

func (d *durationValue) String() string {
	if d == nil || *d == 0 {
		return "0s"
	}
	return formatDuration(time.Duration(*d))
}

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

// durationForms names the forms parseDuration accepts, for its errors.
const durationForms = "give a number with a unit, such as 90s, 10m, 1h30m, 1d or 1d12h (units: ns, us, ms, s, m, h, d = 24h); a leading - makes it negative"

// errDuration is the cause of every duration parse error.
var errDuration = errors.New("invalid duration")

// parseDuration parses a Go duration (time.ParseDuration) extended with days: a
// leading "<number>d" part, optionally followed by a Go duration ("1d12h"). "0"
// is zero.
func parseDuration(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("%w %s: %s", errDuration, quote(s), durationForms)
	}
	in := s
	neg := false
	if in != "" && (in[0] == '-' || in[0] == '+') {
		neg = in[0] == '-'
		in = in[1:]
	}
	i := strings.IndexByte(in, 'd')
	if i < 0 {
		if in == "" || in[0] == '-' || in[0] == '+' {
			return bad()
		}
		d, err := time.ParseDuration(in)
		if err != nil {
			return bad()
		}
		if neg {
			d = -d
		}
		return d, nil
	}
	num, rest := in[:i], in[i+1:]
	if num == "" || strings.ContainsAny(num, "+-eEinfINFxXpP_") {
		return bad()
	}
	days, err := strconv.ParseFloat(num, 64)
	if err != nil || days < 0 {
		return bad()
	}
	total := days * float64(24*time.Hour)
	if rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			return bad()
		}
		r, err := time.ParseDuration(rest)
		if err != nil {
			return bad()
		}
		total += float64(r)
	}
	if total >= math.MaxInt64 {
		return bad()
	}
	d := time.Duration(total)
	if neg {
		d = -d
	}
	return d, nil
}

// formatDuration prints d with days when it has whole days ("1d12h0m0s").
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day || d <= -day {
		sign := ""
		if d < 0 {
			sign, d = "-", -d
		}
		days := d / day
		rest := d % day
		if rest == 0 {
			return sign + strconv.FormatInt(int64(days), 10) + "d"
		}
		return sign + strconv.FormatInt(int64(days), 10) + "d" + rest.String()
	}
	return d.String()
}

// envFlag is a flag whose default comes from an environment variable.
type envFlag struct {
	flag string // the flag's name
	env  string // the variable's name
}

// envDefaults are the environment variables that give the main flags their
// defaults; a flag on the command line wins. The first variable set of a flag wins.
var envDefaults = []envFlag{
	{"store", envStore},
	{"name", "CACHIER_NAME"},
	{"name", "CACHIER_SCOPE"},
	{"stale-after", "CACHIER_STALE_AFTER"},
	{"stale-after", "CACHIER_TTL"},
	{"wait-timeout", "CACHIER_WAIT_TIMEOUT"},
	{"discard-failures", "CACHIER_DISCARD_FAILURES"},
	{"key-dir", "CACHIER_KEY_DIR"},
	{"prune-after", "CACHIER_PRUNE_AFTER"},
	{"max-size", "CACHIER_MAX_SIZE"},
	{"verbose", "CACHIER_VERBOSE"},
}

// applyEnvDefaults sets the flags of fs that have an environment default from the
// environment, before the command line is parsed. Setting them through the Value
// (not fs.Set) keeps them "not given" for the checks that ask (fs.Visit).
func (m *Main) applyEnvDefaults(fs *flag.FlagSet) error {
	if m.Getenv == nil {
		return nil
	}
	done := map[string]bool{}
	for _, e := range envDefaults {
		f := fs.Lookup(e.flag)
		if f == nil || done[e.flag] || e.flag == "store" {
			continue // $CACHIER_STORE is read by storeURL, when the store is opened
		}
		v := m.Getenv(e.env)
		if v == "" {
			continue
		}
		done[e.flag] = true
		if err := f.Value.Set(v); err != nil {
			return fmt.Errorf("$%s=%s: %w", e.env, quote(v), err)
		}
	}
	return nil
}
