package memcachestore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		addrs   []string
		prefix  string
		timeout time.Duration
		idle    int
		maxItem int
	}{
		{url: "memcache://127.0.0.1:11311", addrs: []string{"127.0.0.1:11311"}},
		{url: "memcache://cache.local", addrs: []string{"cache.local:11211"}},
		{url: "memcached://a,b:2,c:3/", addrs: []string{"a:11211", "b:2", "c:3"}},
		{url: "memcache://[::1]:5", addrs: []string{"[::1]:5"}},
		{url: "memcache://[::2]", addrs: []string{"[::2]:11211"}},
		{url: "MEMCACHE://h?prefix=app:v2&timeout=250ms&max_idle_conns=8&max_item_size=2097152",
			addrs: []string{"h:11211"}, prefix: "app:v2", timeout: 250 * time.Millisecond, idle: 8, maxItem: 2 << 20},
	} {
		c, err := parseURL(storetest.MustParseURL(t, tc.url))
		if err != nil {
			t.Errorf("parseURL(%q): %v", tc.url, err)
			continue
		}
		if !slices.Equal(c.addrs, tc.addrs) || c.opts.Prefix != tc.prefix || c.timeout != tc.timeout ||
			c.maxIdleConns != tc.idle || c.opts.MaxItemSize != tc.maxItem {
			t.Errorf("parseURL(%q) = %+v", tc.url, c)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct {
		url, want string
	}{
		{"redis://h", "not memcache"},
		{"memcache:h", "want memcache://host:port"},
		{"memcache://", "no host"},
		{"memcache://a,,b", "empty host"},
		{"memcache://h:0", "bad port"},
		{"memcache://h:99999", "bad port"},
		{"memcache://h:1,h:x:1", "cannot read host"},
		{"memcache://user:hunter2@h", "no passwords"},
		{"memcache://h/db", "unexpected path"},
		{"memcache://h#frag", "fragment"},
		{"memcache://h?prefix=a%20b", "prefix"},
		{"memcache://h?timeout=soon", "timeout"},
		{"memcache://h?timeout=-1s", "timeout"},
		{"memcache://h?max_idle_conns=0", "max_idle_conns"},
		{"memcache://h?max_item_size=10", "max_item_size"},
		{"memcache://h?prefix=a&prefix=b", "given 2 times"},
		{"memcache://h?db=1", "unknown parameter \"db\"; accepted: max_idle_conns, max_item_size, prefix, timeout"},
		{"memcache://h?a=%zz", "query"},
	} {
		_, err := parseURL(storetest.MustParseURL(t, tc.url))
		storetest.CheckBadURL(t, tc.url, err, tc.want, "hunter2")
	}
}

func TestOpen(t *testing.T) {
	if _, ms := storetest.Opened[*Store](t, "memcache://127.0.0.1:1?prefix=x&lazy=1"); !ms.owned || ms.prefix != "x" {
		t.Errorf("Open = %#v; want an owned *Store with prefix x", ms)
	}
	for url, want := range map[string]int{
		"memcache://127.0.0.1:1?lazy=1":                  DefaultMaxIdleConns,
		"memcache://127.0.0.1:1?lazy=1&max_idle_conns=3": 3,
	} {
		if _, ms := storetest.Opened[*Store](t, url); ms.c.MaxIdleConns != want {
			t.Errorf("%s: client keeps %d idle connections, want %d", url, ms.c.MaxIdleConns, want)
		}
	}
	_, err := store.Open(context.Background(), "memcache://h?nope=1")
	storetest.CheckBadURL(t, "memcache://h?nope=1", err, "nope", "")
}

// FuzzParseURL checks that the parser never panics, and that whatever it accepts names
// at least one address and a valid prefix. It never dials.
func FuzzParseURL(f *testing.F) {
	storetest.FuzzURL(f, []string{
		"memcache://127.0.0.1:11211", "memcache://a:1,b:2?prefix=p", "memcache://[::1]", "memcache://h?timeout=1s",
		"memcache://u:p@h", "memcache://h?max_item_size=4096&max_idle_conns=3",
	}, parseURL, func(t *testing.T, raw string, c config) {
		if len(c.addrs) == 0 || validatePrefix(c.opts.Prefix) != nil {
			t.Errorf("parseURL(%q) accepted %+v: no address, or a bad prefix", raw, c)
		}
	})
}

// TestOpenUnreachable checks that store.Open pings the server through the portable
// layer that Open returns, and fails at once when nothing listens there.
func TestOpenUnreachable(t *testing.T) {
	s, err := store.Open(context.Background(), "memcache://127.0.0.1:1?timeout=200ms")
	if !errors.Is(err, store.ErrUnreachable) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open of a port where nothing listens: %v; want an error matching store.ErrUnreachable", err)
	}
	s, err = store.Open(context.Background(), "memcache://127.0.0.1:1?timeout=200ms&lazy=1")
	if err != nil {
		t.Fatalf("Open with lazy=1: %v; want no check", err)
	}
	_ = s.Close()
}
