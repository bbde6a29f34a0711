package store

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// readAll reads every kind of parameter the way a driver's parser does.
func readAll(u *url.URL, accepted ...string) (got map[string]any, rest url.Values, err error) {
	p, err := ReadParams(u, accepted...)
	if err != nil {
		return nil, nil, err
	}
	var (
		d    time.Duration
		n    int
		b    bool
		size int64
		mode = "WAL"
		pre  string
	)
	p.Duration("timeout", &d)
	p.Int("pool", 1, 10, &n)
	p.Bool("tls", &b)
	p.Size("max_bytes", &size)
	p.OneOf("mode", &mode, "WAL", "OFF")
	p.Check("prefix", &pre, func(s string) error { return CheckPrefix(s, 8, "{}") })
	return map[string]any{"timeout": d, "pool": n, "tls": b, "max_bytes": size, "mode": mode, "prefix": pre}, p.Rest(), p.Err()
}

func TestParams(t *testing.T) {
	u, _ := url.Parse("x://h?timeout=2s&pool=3&tls=true&max_bytes=2KiB&mode=off&prefix=ab&other=1&other=2")
	got, rest, err := readAll(u)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"timeout": 2 * time.Second, "pool": 3, "tls": true, "max_bytes": int64(2048), "mode": "OFF", "prefix": "ab"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v; want %v", k, got[k], v)
		}
	}
	if len(rest) != 1 || len(rest["other"]) != 2 {
		t.Errorf("Rest = %v; want other=1&other=2 (passed on, repeated as given)", rest)
	}
	for _, tc := range []struct {
		query, want string
		accepted    []string
	}{
		{"timeout=0s", `timeout="0s" is not a positive duration`, nil},
		{"pool=11", `pool="11" is not a whole number from 1 to 10`, nil},
		{"tls=maybe", `tls="maybe" is not a boolean`, nil},
		{"max_bytes=1XB", `max_bytes: size "1XB"`, nil},
		{"mode=fast", `mode="fast" is not one of WAL, OFF`, nil},
		{"prefix=a{", "prefix: prefix", nil},
		{"prefix=123456789", "longer than 8", nil},
		{"pool=1&pool=2", `"pool" given 2 times`, nil},
		{"a=1&a=2", `"a" given 2 times`, []string{"a"}},
		{"b=1", `unknown parameter "b"; accepted: a, c`, []string{"c", "a"}},
		{"a=%zz", "query: ", nil},
		{"timeout=x&pool=0", "timeout", nil}, // the first error
	} {
		u, _ := url.Parse("x://u:" + "sekrit@h?" + tc.query)
		_, _, err := readAll(u, tc.accepted...)
		if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: %v; want an ErrBadURL containing %q, without the password", tc.query, err, tc.want)
		}
	}
}

// FuzzReadParams checks that reading parameters never panics and every error
// matches ErrBadURL.
func FuzzReadParams(f *testing.F) {
	for _, s := range []string{"timeout=1s&pool=2", "max_bytes=1GiB&mode=wal", "prefix=%00", "a=1&a=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		u := &url.URL{Scheme: "x", Host: "h", RawQuery: q}
		if _, _, err := readAll(u); err != nil && !errors.Is(err, ErrBadURL) {
			t.Errorf("query %q: %v does not match ErrBadURL", q, err)
		}
	})
}
