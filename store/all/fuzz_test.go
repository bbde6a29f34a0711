package all_test

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachier-go/cachier/store"
)

// passMarker starts and ends the password the fuzzer plants, and queryMarker each
// credential it plants in the query, so that a leak of any part of one shows.
const (
	passMarker  = "Pw9X4kz"
	queryMarker = "Qs8Y3jv"
)

// openSeeds cover every scheme and its parameters, with a credential wherever a
// scheme takes one. "{S}" is replaced by a planted credential.
var openSeeds = []struct{ scheme, sep, user, pass, host, query string }{
	{"redis", "://", "u", "pw", "127.0.0.1:1/0", "pool_size=-1"},
	{"redis", "://", "", "pw", "h:6379/99", "prefix=cachier&dial_timeout=2s&pool_size=10&min_idle_conns=0&max_retries=-1&protocol=3"},
	{"rediss", "://", "u", "pw", "h/0", "skip_verify=true&read_timeout=1s&write_timeout=1&pool_timeout=1s&max_active_conns=4"},
	{"redis+cluster", "://", "u", "pw", "h1:7000,h2:7000", "addr=h3:7000&max_redirects=3&read_only=true&route_randomly=1"},
	{"redis+sentinel", "://", "u", "pw", "h:26379/0", "master=m&sentinel_username=s&sentinel_password={S}&db=1"},
	{"redis", "//", "u", "pw", "h/0", ""},
	{"redis", ":/", "u", "pw", "h/0", ""},
	{"redis", ":", "u", "pw", "h/0", ""},
	{"", "//", "u", "pw", "h/0", ""},
	{"memcache", "://", "", "", "h1:11211,h2", "prefix=p&timeout=1s&max_idle_conns=2&max_item_size=4096"},
	{"memcached", "://", "u", "pw", "h", ""},
	{"postgres", "://", "u", "pw", "h:5432/db", "sslmode=disable&password={S}&sslpassword={S}&table=t&listen=false&connect_timeout=2"},
	{"postgresql", "://", "u", "pw", "h/db", "poll_interval=1s&lease_table=l&version_table=v&application_name=a"},
	{"mysql", "://", "u", "pw", "h:3306/db", "tls=true&timeout=1s&readTimeout=1s&maxAllowedPacket=0"},
	{"mysql", "://", "u", "pw", "", "socket=/tmp/s"},
	{"sqlite", ":", "", "", "rel.db", "busy_timeout=1&journal_mode=wal&synchronous=full"},
	{"sqlite", "://", "", "", ":memory:", ""},
	{"mongodb", "://", "u", "pw", "h:27017/db", "collection=c&lease_collection=l&version_collection=v&authSource=admin"},
	{"mongodb+srv", "://", "u", "pw", "cluster.invalid/db", "authMechanismProperties=AWS_SESSION_TOKEN:{S}"},
	{"s3", "://", "AKIA", "pw", "bucket/prefix", "endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true&profile=p"},
	{"s3", "://", "", "", "bucket", "endpoint=http://ak:{S}@127.0.0.1:9000&aws_secret_access_key={S}&secret_key={S}&token={S}"},
	{"file", "://", "", "", "/cache", "fsync=1&poll=1s&allow_shared_dir=0"},
	{"mem", "://", "", "", "", "max_entries=10&max_bytes=1MiB"},
}

// FuzzOpen opens store URLs of every scheme, well formed or not: Open must never
// panic, and no credential (the password, or the value of a credential-bearing
// parameter) may appear in its error. The context is cancelled, so no store
// connects; file and sqlite paths are kept inside a temporary directory.
func FuzzOpen(f *testing.F) {
	for _, s := range openSeeds {
		f.Add(s.scheme, s.sep, s.user, s.pass, s.host, s.query)
	}
	dir := f.TempDir()
	f.Chdir(dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, scheme, sep, user, pass, host, query string) {
		for _, part := range []string{scheme, sep, user, pass, host, query} {
			if strings.Contains(part, passMarker[:3]) || strings.Contains(part, queryMarker[:3]) {
				return // the marker must appear only where it is planted
			}
		}
		lower := strings.ToLower(scheme)
		if strings.Contains(lower, "file") || strings.Contains(lower, "sqlite") {
			if strings.HasPrefix(host, "/") || strings.Contains(host, "..") || strings.Contains(query, "..") {
				host = filepath.Join(dir, strings.ReplaceAll(host, "..", ""))
			}
		}
		var raw strings.Builder
		raw.WriteString(scheme + sep)
		if user != "" || pass != "" {
			raw.WriteString(user + ":" + passMarker + pass + passMarker + "@")
		}
		raw.WriteString(host)
		if query != "" {
			raw.WriteString("?" + strings.ReplaceAll(query, "{S}", queryMarker+"v"+queryMarker))
		}
		rawURL := raw.String()
		checkQuery := secretsInQueryOnly(rawURL)
		st, err := store.Open(ctx, rawURL)
		if err == nil {
			_ = st.Close()
			return
		}
		msg := err.Error()
		if strings.Contains(msg, passMarker) || (checkQuery && strings.Contains(msg, queryMarker)) {
			t.Fatalf("Open(%q) leaks a credential: %v", rawURL, err)
		}
	})
}

// secretsInQueryOnly reports whether every planted credential in the URL's query is
// the value of a credential-bearing parameter, so that the test may demand it hidden.
// (A marker the fuzzer moved into a parameter's name, or into an ordinary parameter,
// is not a credential.)
func secretsInQueryOnly(raw string) bool {
	_, q, ok := strings.Cut(raw, "?")
	if !ok || !strings.Contains(q, queryMarker) {
		return false
	}
	for part := range strings.SplitSeq(q, "&") {
		name, val, _ := strings.Cut(part, "=")
		if strings.Contains(name, queryMarker) {
			return false
		}
		if strings.Contains(val, queryMarker) {
			n, err := url.QueryUnescape(name)
			if err != nil || !store.IsSecretParam(n) {
				return false
			}
		}
	}
	return true
}
