package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// urlPassword returns the password in a URL's user information, even when the URL
// does not parse, so that it can be scrubbed from every message.
func urlPassword(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		p, _ := u.User.Password()
		return p
	}
	// Unparsable: take the user information by hand, as far as the first '/', '?'
	// or '#' after "://" and up to the last '@' before it.
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, p, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return ""
	}
	return p
}

// displayURL returns raw for messages, without its password.
func displayURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if p := urlPassword(raw); p != "" {
		raw = strings.ReplaceAll(raw, p, "xxxxx")
	}
	return quote(raw)
}

// printable makes s safe for a terminal table: control characters, spaces and
// invalid UTF-8 are escaped (Go syntax, quoted), so that a stored ID cannot move the
// cursor, change colours or break the columns.
func printable(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cols ...string) { fmt.Fprintln(t.tw, strings.Join(cols, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// formatBytes formats a byte count for people: 512 B, 1.5 KiB, 3.2 MiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatAge formats a duration for people, to the second (to the millisecond under
// a second): 850ms, 42s, 5m3s, 2h0m7s, 3d4h.
func formatAge(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		s = d.Round(time.Millisecond).String()
	case d < 72*time.Hour:
		s = d.Round(time.Second).String()
	default:
		days := d / (24 * time.Hour)
		s = fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
	}
	if neg {
		return "-" + s
	}
	return s
}

// printableLine is printable for the last column of a table, where plain spaces
// cannot break the columns: only other spaces, control characters and invalid
// UTF-8 make it quote.
func printableLine(s string) string {
	for _, r := range s {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) || (unicode.IsSpace(r) && r != ' ') {
			return strconv.QuoteToASCII(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
