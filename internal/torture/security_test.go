package torture

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/bradfitz/gomemcache/memcache"
	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore/sqlurl"
)

// hostileKeys are keys a caller might build from untrusted input.
var hostileKeys = []string{
	"../../etc/passwd", "..", ".", "/", "a/../../b", "/etc/passwd", `..\..\windows`,
	"'; DROP TABLE x; --", `" OR 1=1 --`, "x'); DELETE FROM x; --",
	"{a}*?", "*", "[a-z]*", "\\*", "cachier:*", "}:v", "{x}:l",
	"$where", "$gt", "a.b.c", "$", "_id",
	"%2e%2e%2fetc", "e/../../l", "key with spaces\n\r\t", "\r\nFLUSHALL\r\n", "ünïcødé 日本",
	"\x01\x7f", "CON", "nul", ".tmp-x", "x.lease", ".lock", strings.Repeat("A", 600), "x\x00y",
}

// TestHostileKeysThroughCachier: on every store, keys made of path, SQL, glob, Redis
// hash-tag and Mongo operator syntax round-trip as data, do not collide, and touch
// nothing outside the store's own names.
func TestHostileKeysThroughCachier(t *testing.T) {
	for _, tg := range targets {
		if tg.name == "redis-cluster" {
			continue
		}
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			u, names, owned := namesFor(t, tg, sharedServer(t, tg.kind))
			before := names(t)
			st, err := store.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			computed := 0
			f, err := cachier.Wrap(func(_ context.Context, k string) (string, error) {
				computed++
				return "value of " + k, nil
			}, cachier.Name("hostile/"+randHex()), cachier.WithStore(st), cachier.WithKey(func(k string) (string, error) { return k, nil }))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range hostileKeys {
				for range 2 {
					v, err := f.Call(ctx, k)
					if err != nil || v != "value of "+k {
						t.Errorf("Call(%q) = %q, %v", k, v, err)
					}
				}
			}
			if computed != len(hostileKeys) {
				t.Errorf("%d computations for %d keys called twice each: keys collide or do not round-trip", computed, len(hostileKeys))
			}
			if s := f.Stats(); s.StoreErrors != 0 || s.DecodeErrors != 0 {
				t.Errorf("store errors %d, decode errors %d", s.StoreErrors, s.DecodeErrors)
			}
			for _, k := range hostileKeys[:5] {
				if err := f.Invalidate(ctx, k); err != nil {
					t.Errorf("Invalidate(%q): %v", k, err)
				}
			}
			after := names(t)
			for n := range after {
				if !before[n] && !owned(n) {
					t.Errorf("a name outside the store's own appeared: %q", n)
				}
			}
			for n := range before {
				if !after[n] {
					t.Errorf("a name outside the store's own disappeared: %q", n)
				}
			}
			t.Logf("%d hostile keys round-tripped; %d names before, %d after", len(hostileKeys), len(before), len(after))
		})
	}
}

// namesFor returns a store URL, a function listing every name in the engine that the
// store could reach (with canaries planted), and whether a name is the store's own.
func namesFor(t *testing.T, tg target, srv *testserver.Server) (string, func(*testing.T) map[string]bool, func(string) bool) {
	ctx := context.Background()
	tag := randHex()
	switch tg.name {
	case "file":
		top := t.TempDir()
		root := filepath.Join(top, "a", "root")
		for _, p := range []string{"a/b/etc/passwd", "etc/passwd", "a/x", "x"} {
			must(t, os.MkdirAll(filepath.Dir(filepath.Join(top, p)), 0o700))
			must(t, os.WriteFile(filepath.Join(top, p), []byte("canary"), 0o600))
		}
		must(t, os.MkdirAll(root, 0o700))
		return "file://" + root, func(t *testing.T) map[string]bool {
				m := map[string]bool{}
				err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					b := []byte{}
					if d.Type().IsRegular() {
						if b, err = os.ReadFile(p); err != nil {
							return err
						}
					}
					m[fmt.Sprintf("%s %x", p, b)] = true
					return nil
				})
				must(t, err)
				return m
			}, func(n string) bool {
				return strings.HasPrefix(n, root+"/")
			}
	case "sqlite", "postgres", "mariadb":
		table := "hostile_" + tag
		var u string
		switch tg.name {
		case "sqlite":
			u = "sqlite://" + filepath.Join(t.TempDir(), "cache.db") + "?table=" + table
		case "postgres":
			u = srv.URL + "&table=" + table
		default:
			u = mysqlURL(t, srv, table)
		}
		pu, _ := url.Parse(u)
		cfg, err := sqlurl.Parse(pu)
		must(t, err)
		db, err := sql.Open(cfg.Driver, cfg.DSN)
		must(t, err)
		t.Cleanup(func() { db.Close() })
		// The canary the classic injection would drop: table x with one row.
		_, err = db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS x (v INTEGER)")
		must(t, err)
		_, err = db.ExecContext(ctx, "DELETE FROM x")
		must(t, err)
		_, err = db.ExecContext(ctx, "INSERT INTO x (v) VALUES (42)")
		must(t, err)
		q := map[string]string{
			"sqlite":   "SELECT name FROM sqlite_master WHERE type = 'table'",
			"postgres": "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
			"mariadb":  "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
		}[tg.name]
		return u, func(t *testing.T) map[string]bool {
				m := map[string]bool{}
				rows, err := db.QueryContext(ctx, q)
				must(t, err)
				defer rows.Close()
				for rows.Next() {
					var n string
					must(t, rows.Scan(&n))
					m["table "+n] = true
				}
				var rowsInX int
				if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM x WHERE v = 42").Scan(&rowsInX); err == nil {
					m[fmt.Sprintf("rows of x: %d", rowsInX)] = true
				}
				return m
			}, func(n string) bool {
				return strings.HasPrefix(n, "table "+table)
			}
	case "redis":
		prefix := "hostile-" + tag
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { rdb.Close() })
		for _, k := range []string{"x", "etc/passwd", "cachier:x"} {
			must(t, rdb.Set(ctx, "canary-"+tag+"-"+k, "canary", 0).Err())
		}
		return srv.URL + "?prefix=" + prefix, func(t *testing.T) map[string]bool {
				keys, err := rdb.Keys(ctx, "*").Result()
				must(t, err)
				m := map[string]bool{}
				for _, k := range keys {
					v, _ := rdb.Get(ctx, k).Result()
					if strings.HasPrefix(k, "canary-") {
						k += "=" + v
					}
					m[k] = true
				}
				return m
			}, func(n string) bool {
				return strings.HasPrefix(n, prefix+":")
			}
	case "memcached":
		// Item names are hashes; only canaries can be checked.
		prefix := "hostile-" + tag
		mc := memcache.New(srv.Addr)
		canaries := []string{"x", "hostile-" + tag, prefix + ":e:x"}
		for _, k := range canaries {
			must(t, mc.Set(&memcache.Item{Key: k, Value: []byte("canary")}))
		}
		return "memcache://" + srv.Addr + "?prefix=" + prefix, func(t *testing.T) map[string]bool {
			m := map[string]bool{}
			for _, k := range canaries {
				if it, err := mc.Get(k); err == nil {
					m[k+"="+string(it.Value)] = true
				}
			}
			return m
		}, func(string) bool { return false }
	case "ferretdb":
		coll := "hostile_" + tag
		client, err := mongo.Connect(options.Client().ApplyURI(srv.URL))
		must(t, err)
		t.Cleanup(func() { _ = client.Disconnect(ctx) })
		_, err = client.Database("cachier_torture").Collection("x").InsertOne(ctx, bson.D{{Key: "canary", Value: tag}})
		must(t, err)
		return strings.TrimSuffix(srv.URL, "/") + "/cachier_torture?collection=" + coll, func(t *testing.T) map[string]bool {
				m := map[string]bool{}
				dbs, err := client.ListDatabaseNames(ctx, bson.D{})
				must(t, err)
				for _, d := range dbs {
					colls, err := client.Database(d).ListCollectionNames(ctx, bson.D{})
					must(t, err)
					for _, c := range colls {
						m[d+"."+c] = true
					}
				}
				n, err := client.Database("cachier_torture").Collection("x").CountDocuments(ctx, bson.D{{Key: "canary", Value: tag}})
				must(t, err)
				m[fmt.Sprintf("canaries: %d", n)] = true
				return m
			}, func(n string) bool {
				return strings.HasPrefix(n, "cachier_torture."+coll)
			}
	case "minio":
		prefix := "hostile-" + tag
		client := s3.New(s3.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
			Logger:      logging.Nop{}, ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		})
		const bucket = "cachier-torture"
		_, _ = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
		for _, k := range []string{"etc/passwd", "x", prefix + "-sibling/e/x"} {
			_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("canary")})
			must(t, err)
		}
		return s3URL(srv, prefix), func(t *testing.T) map[string]bool {
				m := map[string]bool{}
				p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
				for p.HasMorePages() {
					out, err := p.NextPage(ctx)
					must(t, err)
					for _, o := range out.Contents {
						m[fmt.Sprintf("%s %s", *o.Key, aws.ToString(o.ETag))] = true
					}
				}
				return m
			}, func(n string) bool {
				return strings.HasPrefix(n, prefix+"/")
			}
	}
	t.Skipf("no name listing for %s", tg.name)
	return "", nil, nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestFileStoreRefusesSharedDir: a cache directory other users can write is refused
// unless the URL says allow_shared_dir, because they could plant results.
func TestFileStoreRefusesSharedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	must(t, os.Mkdir(dir, 0o777))
	must(t, os.Chmod(dir, 0o777))
	_, err := store.Open(context.Background(), "file://"+dir)
	if err == nil || !strings.Contains(err.Error(), "AllowSharedDir") {
		t.Fatalf("Open on a world-writable directory = %v; want a refusal naming AllowSharedDir", err)
	}
	st, err := store.Open(context.Background(), "file://"+dir+"?allow_shared_dir=1")
	if err != nil {
		t.Fatalf("with allow_shared_dir=1: %v", err)
	}
	st.Close()
}

// TestFileStoreSymlinksNotFollowed plants symlinks where the entry file, its fan-out
// directory and its namespace directory are, each pointing at a copy of the genuine
// entry outside the root. A Call must neither read through them (it is a miss) nor
// write through them (nothing outside changes).
//
// Issue 7 (fixed): filestore used to open entries with O_NOFOLLOW on the last component
// only, so a symlinked fan-out or namespace directory was followed. It now resolves
// every path beneath its root and refuses a symlink in any component.
func TestFileStoreSymlinksNotFollowed(t *testing.T) {
	for _, level := range []string{"entry file", "fan-out directory", "namespace directory"} {
		t.Run(level, func(t *testing.T) {
			ctx := context.Background()
			top := t.TempDir()
			root, outside := filepath.Join(top, "root"), filepath.Join(top, "outside")
			must(t, os.Mkdir(root, 0o700))
			must(t, os.Mkdir(outside, 0o700))
			st, err := store.Open(ctx, "file://"+root)
			must(t, err)
			defer st.Close()
			computed := 0
			f, err := cachier.Wrap(func(_ context.Context, k string) (string, error) {
				computed++
				return fmt.Sprintf("computation %d", computed), nil
			}, cachier.Name("symlink/"+randHex()), cachier.WithStore(st), cachier.WithKey(func(k string) (string, error) { return k, nil }),
				cachier.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			must(t, err)
			if _, err := f.Call(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			entry := entryFile(t, root)
			victim := map[string]string{
				"entry file":          entry,
				"fan-out directory":   filepath.Dir(entry),
				"namespace directory": filepath.Dir(filepath.Dir(entry)),
			}[level]
			// Move the real thing outside (a valid entry there), and link to it.
			moved := filepath.Join(outside, "moved")
			must(t, os.Rename(victim, moved))
			must(t, os.Symlink(moved, victim))
			snapshot := func() string {
				var b strings.Builder
				must(t, filepath.WalkDir(outside, func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					fi, err := d.Info()
					if err != nil {
						return err
					}
					data := []byte{}
					if d.Type().IsRegular() {
						data, _ = os.ReadFile(p)
					}
					fmt.Fprintf(&b, "%s %v %d %x\n", p, fi.Mode(), fi.ModTime().UnixNano(), data)
					return nil
				}))
				return b.String()
			}
			before := snapshot()
			v, err := f.Call(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if v == "computation 1" {
				t.Errorf("Call returned the entry outside the root, through a symlinked %s", level)
			}
			_ = f.Invalidate(ctx, "k")
			_ = f.Clear(ctx)
			if after := snapshot(); after != before {
				t.Errorf("the store wrote outside its root through a symlinked %s:\nbefore:\n%s\nafter:\n%s", level, before, after)
			}
		})
	}
}

var flagKnownBugs = flag.Bool("torture.known-bugs", false, "run the checks that fail until known bugs are fixed")

// TestCredentialsNeverLeak opens stores from URLs carrying a password, against a port
// nobody listens on (and with a bad parameter, and malformed), calls through cachier
// with Verbose and with FailOnStoreError, and checks that the password appears in no
// error and no log line: cachier's logger, slog's default, and the drivers' loggers.
func TestCredentialsNeverLeak(t *testing.T) {
	const secret = "hunter2-S3CRET"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	down := ln.Addr().String()
	ln.Close()

	var logs syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	_ = mysql.SetLogger(log.New(&logs, "[mysql] ", 0))
	defer mysql.SetLogger(log.New(io.Discard, "", 0))
	redis.SetLogger(redisLog{&logs})
	defer redis.SetLogger(quietRedis{})

	urls := []string{
		"redis://user:" + secret + "@" + down + "/0",
		"redis://:" + secret + "@" + down + "/0?bogus=1",
		"rediss://user:" + secret + "@" + down + "/0",
		"redis+sentinel://user:" + secret + "@" + down + "/0?master=m&sentinel_password=" + secret,
		"postgres://user:" + secret + "@" + down + "/db?sslmode=disable",
		"postgres://user:" + secret + "@" + down + "/db?sslmode=disable&bogus=1",
		"postgres://user:" + secret + "@[::1/db",
		"mysql://user:" + secret + "@" + down + "/db",
		"mysql://user:" + secret + "@" + down + "/db?bogus=1",
		"mongodb://user:" + secret + "@" + down + "/db?serverSelectionTimeoutMS=500",
		"mongodb://user:" + secret + "@" + down + "/db?bogus=1",
		"s3://AKIA:" + secret + "@bucket/prefix?endpoint=http://" + down + "&region=us-east-1&path_style=true",
		"s3://AKIA:" + secret + "@bucket/prefix?bogus=1",
		"memcache://" + down + "?prefix=" + secret, // not a secret, but must not crash anything
	}
	for _, u := range urls[:len(urls)-1] {
		t.Run(strings.SplitN(u, ":", 2)[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out bytes.Buffer
			texts := []string{}
			st, err := store.Open(ctx, u)
			if err != nil {
				texts = append(texts, err.Error())
			} else {
				defer st.Close()
				logger := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
				f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x, nil },
					cachier.Name("creds/"+randHex()), cachier.WithStore(st), cachier.WithLogger(logger),
					cachier.StoreTimeout(time.Second), cachier.Verbose())
				must(t, err)
				if v, err := f.Call(ctx, 1); err != nil || v != 1 {
					t.Errorf("Call with the store down = %d, %v; want the function's result", v, err)
				}
				_, err = f.Call(ctx, 2, cachier.FailOnStoreError(true))
				if err == nil {
					t.Errorf("FailOnStoreError with the store down: no error")
				} else {
					texts = append(texts, err.Error())
				}
				for _, op := range []func(context.Context) error{
					func(ctx context.Context) error { return f.Invalidate(ctx, 1) },
					f.Clear, f.ClearBeingCalculated,
				} {
					ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					if err := op(ctx); err != nil {
						texts = append(texts, err.Error())
					}
					cancel()
				}
				texts = append(texts, fmt.Sprint(st))
			}
			texts = append(texts, out.String())
			for _, s := range texts {
				if strings.Contains(s, secret) {
					t.Errorf("the password appears in %q", s)
				}
			}
			if len(texts) < 2 && err == nil {
				t.Fatal("nothing was checked")
			}
		})
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the password appears in a driver's or slog's default log:\n%s", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type redisLog struct{ w io.Writer }

func (l redisLog) Printf(_ context.Context, format string, args ...any) {
	fmt.Fprintf(l.w, format+"\n", args...)
}
