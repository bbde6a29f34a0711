package redisstore

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url   string
		check func(t *testing.T, c *config)
	}{
		{"redis://localhost:6379/2?prefix=app&dial_timeout=3s", func(t *testing.T, c *config) {
			if c.single == nil || c.single.Addr != "localhost:6379" || c.single.DB != 2 || c.single.DialTimeout != 3*time.Second {
				t.Errorf("single = %+v", c.single)
			}
			if c.prefix != "app" {
				t.Errorf("prefix = %q", c.prefix)
			}
		}},
		{"redis://u:secret@h", func(t *testing.T, c *config) {
			if c.single.Username != "u" || c.single.Password != "secret" || c.single.Addr != "h:6379" || c.prefix != DefaultPrefix {
				t.Errorf("single = %+v, prefix %q", c.single, c.prefix)
			}
		}},
		{"rediss://h:7000", func(t *testing.T, c *config) {
			if c.single.TLSConfig == nil || c.single.TLSConfig.ServerName != "h" {
				t.Errorf("TLS = %+v", c.single.TLSConfig)
			}
		}},
		{"redis+cluster://a:1,b:2,c:3?max_redirects=5", func(t *testing.T, c *config) {
			if c.cluster == nil || !slices.Equal(c.cluster.Addrs, []string{"a:1", "b:2", "c:3"}) || c.cluster.MaxRedirects != 5 {
				t.Errorf("cluster = %+v", c.cluster)
			}
		}},
		{"redis+cluster://a:1?addr=b:2&addr=[::1]:3&prefix=p", func(t *testing.T, c *config) {
			if !slices.Equal(c.cluster.Addrs, []string{"a:1", "b:2", "[::1]:3"}) || c.prefix != "p" {
				t.Errorf("cluster = %+v, prefix %q", c.cluster.Addrs, c.prefix)
			}
		}},
		{"redis+cluster:///?addr=a:1&addr=b:2", func(t *testing.T, c *config) {
			if !slices.Equal(c.cluster.Addrs, []string{"a:1", "b:2"}) {
				t.Errorf("cluster = %+v", c.cluster.Addrs)
			}
		}},
		{"redis+sentinel://u:pw@s1,s2:26380/3?master=mymaster&sentinel_password=sp&pool_size=7", func(t *testing.T, c *config) {
			f := c.sentinel
			if f == nil || f.MasterName != "mymaster" || !slices.Equal(f.SentinelAddrs, []string{"s1:26379", "s2:26380"}) ||
				f.DB != 3 || f.Username != "u" || f.Password != "pw" || f.SentinelPassword != "sp" || f.PoolSize != 7 {
				t.Errorf("sentinel = %+v", f)
			}
		}},
		{"rediss+sentinel://s1:1?master=m", func(t *testing.T, c *config) {
			if c.sentinel.TLSConfig == nil || c.sentinel.TLSConfig.ServerName != "" {
				t.Errorf("sentinel TLS = %+v; want TLS with each node's own name", c.sentinel.TLSConfig)
			}
		}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, err := parseURL(storetest.MustParseURL(t, tc.url))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct {
		url, want string // want: a substring of the error
	}{
		{"redis://h?nope=1", "accepted: prefix"},
		{"redis://h?prefix=a%20b", "prefix"},
		{"redis://h?prefix={x}", "prefix"},
		{"redis://h?prefix=a&prefix=b", `prefix" given 2 times`},
		{"redis://h/notanumber", "database"},
		{"redis://a:1,b:2", "several hosts"},
		{"redis+cluster://a:1/0", "no database number"},
		{"redis+cluster://", "no cluster address"},
		{"redis+cluster://a:1?db=1&bogus=2", "bogus"},
		{"redis+sentinel://s:1", "master"},
		{"redis+sentinel://?master=m", "no Sentinel address"},
		{"redis+sentinel://s:1?master=m&wat=1", "accepted: prefix, master, addr, sentinel_username, sentinel_password"},
		{"redis+ring://a:1", "unknown topology"},
		{"http://a:1", "scheme"},
		{"redis:opaque", "opaque"},
		{"redis://a:1,,b:2", "empty address"},
		{"redis://h?a=%zz", "query"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := parseURL(storetest.MustParseURL(t, tc.url))
			storetest.CheckBadURL(t, tc.url, err, tc.want, "")
		})
	}
}

// TestParseURLRedacts checks that no error carries the password.
func TestParseURLRedacts(t *testing.T) {
	for _, s := range []string{
		"redis://u:hunter2@h?bogus=1",
		"redis://u:hunter2@h/x",
		"redis+cluster://u:hunter2@a:1/0",
		"redis+sentinel://u:p@s:1?master=m&bogus=1&sentinel_password=hunter2",
		"redis+sentinel://u:hunter2@s:1",
	} {
		_, err := parseURL(storetest.MustParseURL(t, s))
		if err == nil {
			t.Fatalf("parseURL(%q) = nil error", s)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("parseURL(%q) error carries the password: %v", s, err)
		}
	}
}

func TestSchemesRegistered(t *testing.T) {
	for _, s := range []string{SchemeRedis, SchemeRedisTLS, SchemeCluster, SchemeClusterTLS, SchemeSentinel, SchemeSentinelTLS} {
		if !slices.Contains(store.Schemes(), s) {
			t.Errorf("scheme %q is not registered", s)
		}
	}
}

// FuzzOpenURL parses (never connects): no panic, and every error matches
// store.ErrBadURL without the URL's password.
func FuzzOpenURL(f *testing.F) {
	storetest.FuzzURL(f, []string{
		"redis://u:p@h:1/2?prefix=x&dial_timeout=1s", "rediss://h", "redis+cluster://a:1,b:2?addr=c:3",
		"redis+sentinel://s:1,s2/0?master=m&sentinel_password=x", "redis://h?prefix=", "redis+x://", "redis://[::1]:1",
		"redis+cluster://u:pw@a:1?read_only=true&route_randomly=true", "redis://h/1/2", "redis://h?protocol=9",
	}, parseURL, func(t *testing.T, s string, c *config) {
		if n := btoi(c.single != nil) + btoi(c.cluster != nil) + btoi(c.sentinel != nil); n != 1 {
			t.Fatalf("parseURL(%q) set %d client configurations", s, n)
		}
		if validatePrefix(c.prefix) != nil {
			t.Fatalf("parseURL(%q) accepted prefix %q", s, c.prefix)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
