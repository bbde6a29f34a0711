package memcachestore

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier/store"
)

func init() {
	store.Register(open, "memcache", "memcached")
}

// DefaultPort is memcached's port, used when a URL's host has none.
const DefaultPort = "11211"

// DefaultMaxIdleConns is how many idle connections per server a store opened from a
// URL keeps when the URL has no max_idle_conns (gomemcache's own default is 2).
const DefaultMaxIdleConns = 16

// config is what a URL says, before anything is dialled.
type config struct {
	addrs        []string
	opts         Options
	timeout      time.Duration
	maxIdleConns int
}

// parseURL reads memcache://host:port[,host:port...][?prefix=..&timeout=..&max_idle_conns=..&max_item_size=..].
// It never dials. Errors match store.ErrBadURL.
func parseURL(u *url.URL) (config, error) {
	var c config
	bad := func(format string, args ...any) (config, error) {
		return config{}, store.BadURL(u, format, args...)
	}
	switch strings.ToLower(u.Scheme) {
	case "memcache", "memcached":
	default:
		return bad("scheme %q is not memcache", u.Scheme)
	}
	if u.Opaque != "" {
		return bad("want memcache://host:port")
	}
	if u.User != nil {
		return bad("memcached has no passwords (the text protocol has no authentication)")
	}
	if u.Path != "" && u.Path != "/" {
		return bad("unexpected path %q (memcached has no databases)", u.Path)
	}
	if u.Fragment != "" {
		return bad("unexpected fragment")
	}
	if u.Host == "" {
		return bad("no host")
	}
	for h := range strings.SplitSeq(u.Host, ",") {
		if h == "" {
			return bad("empty host in %q", u.Host)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: the whole thing is the host.
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), DefaultPort
			if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
				return bad("cannot read host %q", h)
			}
		}
		if host == "" {
			return bad("empty host name in %q", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("bad port in %q", h)
		}
		c.addrs = append(c.addrs, net.JoinHostPort(host, port))
	}
	p, err := store.ReadParams(u, "prefix", "timeout", "max_idle_conns", "max_item_size")
	if err != nil {
		return config{}, err
	}
	p.Check("prefix", &c.opts.Prefix, validatePrefix)
	p.Duration("timeout", &c.timeout)
	p.Int("max_idle_conns", 1, math.MaxInt32, &c.maxIdleConns)
	p.Int("max_item_size", 4096, math.MaxInt32, &c.opts.MaxItemSize)
	if err := p.Err(); err != nil {
		return config{}, err
	}
	return c, nil
}

// open is the store.Opener for memcache:// URLs. The store owns the client it makes.
func open(_ context.Context, u *url.URL) (store.Store, error) { // store.Open has checked ctx
	c, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	var servers memcache.ServerList
	if err := servers.SetServers(c.addrs...); err != nil {
		return nil, fmt.Errorf("memcachestore: %s: %w", store.RedactURL(u), err)
	}
	client := memcache.NewFromSelector(&servers)
	client.Timeout = c.timeout
	client.MaxIdleConns = c.maxIdleConns
	if client.MaxIdleConns == 0 {
		// gomemcache keeps 2 idle connections per server by default, so a store shared by
		// a few goroutines dials a new connection for most operations and leaves it in
		// TIME_WAIT; a cache wants its connections kept.
		client.MaxIdleConns = DefaultMaxIdleConns
	}
	if len(c.addrs) == 1 {
		c.opts.Addr = c.addrs[0]
	}
	s, err := New(client, &c.opts)
	if err != nil {
		return nil, err
	}
	s.owned = true
	return store.Adapt(s), nil
}

// Ping checks that every server answers, within the client's timeout (the timeout
// parameter, 500ms by default) or ctx. store.Open calls it unless the URL says lazy=1.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.c.Ping() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
