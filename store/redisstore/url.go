package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
)

// URL schemes registered with store.Open.
const (
	SchemeRedis          = "redis"           // redis://[user:pass@]host:port/db
	SchemeRedisTLS       = "rediss"          // the same over TLS
	SchemeCluster        = "redis+cluster"   // redis+cluster://[user:pass@]host:port,host:port
	SchemeClusterTLS     = "rediss+cluster"  // the same over TLS
	SchemeSentinel       = "redis+sentinel"  // redis+sentinel://[user:pass@]host:port,host:port/db?master=name
	SchemeSentinelTLS    = "rediss+sentinel" // the same over TLS (to the master and replicas)
	paramPrefix          = "prefix"
	paramMaster          = "master"
	paramAddr            = "addr"
	paramSentinelUser    = "sentinel_username"
	paramSentinelPass    = "sentinel_password"
	goRedisOptionsNotice = "go-redis's own options (db, protocol, client_name, dial_timeout, read_timeout, write_timeout, " +
		"pool_size, pool_timeout, min_idle_conns, max_idle_conns, max_active_conns, conn_max_idle_time, conn_max_lifetime, " +
		"max_retries, min_retry_backoff, max_retry_backoff, pool_fifo, skip_verify; for clusters also max_redirects, " +
		"read_only, route_by_latency, route_randomly)"
)

func init() {
	store.Register(open, SchemeRedis, SchemeRedisTLS, SchemeCluster, SchemeClusterTLS, SchemeSentinel, SchemeSentinelTLS)
	// go-redis logs through one process-wide logger, which writes "failed to dial"
	// and the like to stderr: send it to slog at debug level instead.
	redis.SetLogger(slogLogger{})
}

// slogLogger passes go-redis's log lines to slog.Default at debug level, with any
// credential redacted.
type slogLogger struct{}

func (slogLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().Log(ctx, slog.LevelDebug, "redisstore: go-redis: "+store.Redact(fmt.Sprintf(format, v...)))
}

// Ping checks that the server answers, with the URL's credentials and database
// selected (a database number the server does not have fails here). store.Open calls
// it unless the URL says lazy=1.
func (s *driver) Ping(ctx context.Context) error {
	err := s.client.Ping(ctx).Err()
	if err != nil && strings.Contains(err.Error(), "DB index is out of range") {
		return fmt.Errorf("the database number is larger than the server's databases setting (16 by default): %w", err)
	}
	return err
}

// config is a parsed store URL: exactly one of the client options is set.
type config struct {
	prefix   string
	single   *redis.Options
	cluster  *redis.ClusterOptions
	sentinel *redis.FailoverOptions
}

// open is the store.Opener of every scheme. The store owns the client it creates.
//
//	redis://[user:pass@]host:port/db?prefix=cachier&dial_timeout=2s
//	rediss://...                          TLS
//	redis+cluster://host:port,host:port   or host:port?addr=host:port&addr=host:port
//	redis+sentinel://[user:pass@]host:port,host:port/db?master=name&sentinel_password=...
//
// prefix is the store's Options.Prefix; every other parameter is one of go-redis's
// options, as redis.ParseURL and redis.ParseClusterURL read them. Sentinel addresses
// (and cluster seeds) may be listed comma-separated in the host or as repeated addr
// parameters; IPv6 literals need the addr form.
func open(_ context.Context, u *url.URL) (store.Store, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	// A client made from a URL honours each call's context deadline, so cachier's
	// StoreTimeout bounds every operation even when the server stops answering
	// (go-redis otherwise keeps to its own socket timeouts and dial retries).
	var c redis.UniversalClient
	switch {
	case cfg.cluster != nil:
		cfg.cluster.ContextTimeoutEnabled = true
		c = redis.NewClusterClient(cfg.cluster)
	case cfg.sentinel != nil:
		cfg.sentinel.ContextTimeoutEnabled = true
		c = redis.NewFailoverClient(cfg.sentinel)
	default:
		cfg.single.ContextTimeoutEnabled = true
		c = redis.NewClient(cfg.single)
	}
	d, err := New(c, &Options{Prefix: cfg.prefix})
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("%w: %s", store.ErrBadURL, err)
	}
	base(d).owned = true
	return store.Adapt(d), nil
}

// badURL returns an error matching store.ErrBadURL, without credentials.
func badURL(u *url.URL, format string, args ...any) error {
	return store.BadURL(u, format, args...)
}

// intParams are go-redis's integer parameters and the values accepted for each: go-redis
// takes any integer and a negative or huge pool size panics when the client is made.
var intParams = map[string]struct {
	min, max int
	what     string
}{
	"db":                         {0, 1 << 20, "a database number (the server's databases setting bounds it, 16 by default)"},
	"protocol":                   {2, 3, "2 (RESP2) or 3 (RESP3)"},
	"max_retries":                {-1, 1000, "-1 (no retries) or a count"},
	"pool_size":                  {1, 10000, "connections per node (the default is 10 per CPU)"},
	"min_idle_conns":             {0, 10000, "a count of connections"},
	"max_idle_conns":             {0, 10000, "a count of connections"},
	"max_active_conns":           {0, 10000, "a count of connections (0: no limit)"},
	"max_concurrent_dials":       {0, 10000, "a count of dials"},
	"pipeline_pool_size":         {-1, 10000, "-1 (no pipeline pool) or a count of connections"},
	"pipeline_read_buffer_size":  {0, 64 << 20, "bytes"},
	"pipeline_write_buffer_size": {0, 64 << 20, "bytes"},
	"max_redirects":              {-1, 1000, "-1 (no redirects) or a count"},
	"dialer_retries":             {0, 1000, "a count"},
	"failing_timeout_seconds":    {0, 86400, "seconds"},
}

// checkIntParams rejects an integer parameter outside the range go-redis can use,
// naming it and the range.
func checkIntParams(u *url.URL, q url.Values) error {
	for name, vs := range q {
		r, ok := intParams[name]
		if !ok {
			continue
		}
		for _, v := range vs {
			n, err := strconv.Atoi(v)
			if err != nil || n < r.min || n > r.max {
				return badURL(u, "%s=%q is not an integer from %d to %d (%s)", name, v, r.min, r.max, r.what)
			}
		}
	}
	return nil
}

// parseURL turns a store URL into client options without connecting.
func parseURL(u *url.URL) (*config, error) {
	if u == nil {
		return nil, badURL(nil, "nil URL")
	}
	scheme := strings.ToLower(u.Scheme)
	base, topology, _ := strings.Cut(scheme, "+")
	if base != "redis" && base != "rediss" {
		return nil, badURL(u, "scheme %q is not one of %s", u.Scheme,
			strings.Join([]string{SchemeRedis, SchemeRedisTLS, SchemeCluster, SchemeClusterTLS, SchemeSentinel, SchemeSentinelTLS}, ", "))
	}
	if u.Opaque != "" {
		return nil, badURL(u, "want %s://host:port, not an opaque URL", scheme)
	}
	p, err := store.ReadParams(u)
	if err != nil {
		return nil, err
	}
	cfg := &config{prefix: DefaultPrefix}
	p.Check(paramPrefix, &cfg.prefix, validatePrefix)
	q := p.Rest()
	if err := p.Err(); err != nil {
		return nil, err
	}
	if err := checkIntParams(u, q); err != nil {
		return nil, err
	}
	hosts := []string{}
	if u.Host != "" {
		hosts = strings.Split(u.Host, ",")
		for _, h := range hosts {
			if h == "" {
				return nil, badURL(u, "empty address in host list %q", u.Host)
			}
		}
	}

	// The URL go-redis parses: the scheme it knows, the first host, the rest in addr.
	inner := url.URL{Scheme: base, User: u.User, Path: u.Path, RawPath: u.RawPath}
	switch topology {
	case "":
		if len(hosts) > 1 {
			return nil, badURL(u, "several hosts need %s+cluster:// or %s+sentinel://", base, base)
		}
		inner.Host = u.Host
		inner.RawQuery = q.Encode()
		o, err := redis.ParseURL(inner.String())
		if err != nil {
			return nil, goRedisError(u, err, paramPrefix)
		}
		if o.DB < 0 || o.DB > intParams["db"].max {
			return nil, badURL(u, "database number %d in the path is not from 0 to %d", o.DB, intParams["db"].max)
		}
		cfg.single = o
	case "cluster":
		if u.Path != "" && u.Path != "/" {
			return nil, badURL(u, "a cluster has no database number; remove the path %q", u.Path)
		}
		inner.Path, inner.RawPath = "", ""
		if len(hosts) == 0 {
			if hosts = q[paramAddr]; len(hosts) == 0 {
				return nil, badURL(u, "no cluster address: list host:port,host:port or addr=host:port")
			}
			delete(q, paramAddr)
		}
		inner.Host = hosts[0]
		for _, h := range hosts[1:] {
			q.Add(paramAddr, h)
		}
		inner.RawQuery = q.Encode()
		o, err := redis.ParseClusterURL(inner.String())
		if err != nil {
			return nil, goRedisError(u, err, paramPrefix, paramAddr)
		}
		cfg.cluster = o
	case "sentinel":
		master := q.Get(paramMaster)
		if master == "" {
			return nil, badURL(u, "missing master=<name> of the Sentinel-monitored master")
		}
		addrs := append(hosts, q[paramAddr]...)
		if len(addrs) == 0 {
			return nil, badURL(u, "no Sentinel address: list host:port,host:port or addr=host:port")
		}
		for i, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				addrs[i] = net.JoinHostPort(a, "26379")
				if _, _, err := net.SplitHostPort(addrs[i]); err != nil {
					return nil, badURL(u, "bad Sentinel address %q", a)
				}
			}
		}
		so := &redis.FailoverOptions{
			MasterName:       master,
			SentinelAddrs:    addrs,
			SentinelUsername: q.Get(paramSentinelUser),
			SentinelPassword: q.Get(paramSentinelPass),
		}
		for _, p := range []string{paramMaster, paramAddr, paramSentinelUser, paramSentinelPass} {
			delete(q, p)
		}
		// The connection options are those of a single client; parse them so.
		inner.Host = "localhost"
		inner.RawQuery = q.Encode()
		o, err := redis.ParseURL(inner.String())
		if err != nil {
			return nil, goRedisError(u, err, paramPrefix, paramMaster, paramAddr, paramSentinelUser, paramSentinelPass)
		}
		if o.DB < 0 || o.DB > intParams["db"].max {
			return nil, badURL(u, "database number %d in the path is not from 0 to %d", o.DB, intParams["db"].max)
		}
		copyToFailover(so, o)
		cfg.sentinel = so
	default:
		return nil, badURL(u, "unknown topology %q in scheme %q; use %s+cluster or %s+sentinel", topology, u.Scheme, base, base)
	}
	return cfg, nil
}

func goRedisError(u *url.URL, err error, ours ...string) error {
	msg := err.Error()
	if strings.Contains(msg, "unexpected option") {
		return badURL(u, "%s; accepted: %s, and %s", msg, strings.Join(ours, ", "), goRedisOptionsNotice)
	}
	return badURL(u, "%s", msg)
}

// copyToFailover moves the connection options parsed for one node onto a failover
// client's options.
func copyToFailover(f *redis.FailoverOptions, o *redis.Options) {
	f.Username, f.Password, f.DB = o.Username, o.Password, o.DB
	f.Protocol, f.ClientName = o.Protocol, o.ClientName
	f.DialTimeout, f.ReadTimeout, f.WriteTimeout = o.DialTimeout, o.ReadTimeout, o.WriteTimeout
	f.PoolFIFO, f.PoolSize, f.PoolTimeout = o.PoolFIFO, o.PoolSize, o.PoolTimeout
	f.MinIdleConns, f.MaxIdleConns, f.MaxActiveConns = o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns
	f.ConnMaxIdleTime, f.ConnMaxLifetime = o.ConnMaxIdleTime, o.ConnMaxLifetime
	f.MaxRetries, f.MinRetryBackoff, f.MaxRetryBackoff = o.MaxRetries, o.MinRetryBackoff, o.MaxRetryBackoff
	if o.TLSConfig != nil {
		f.TLSConfig = o.TLSConfig.Clone()
		f.TLSConfig.ServerName = "" // each node's own host, not the placeholder
	}
}
