package torture

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/bradfitz/gomemcache/memcache"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore/sqlurl"
)

// engine reads and writes the bytes a store keeps for an entry, with the engine's own
// client, behind the store's back: as a damaged disk, a bug elsewhere or an attacker
// with write access would.
type engine struct {
	url   string
	read  func(t *testing.T, k store.Key) []byte
	write func(t *testing.T, k store.Key, b []byte)
}

// engineFor returns the store URL and raw access of a target. Each test gets fresh
// names (prefix, table, collection, directory).
func engineFor(t *testing.T, tg target, srv *testserver.Server) engine {
	ctx := context.Background()
	tag := randHex()
	switch tg.name {
	case "file":
		dir := t.TempDir()
		st, err := store.Open(ctx, "file://"+dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		nsDir := func(k store.Key) string { return st.(store.Locator).Dir(k.Namespace) }
		return engine{
			url: "file://" + dir,
			read: func(t *testing.T, k store.Key) []byte {
				b, err := os.ReadFile(entryFile(t, nsDir(k)))
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			write: func(t *testing.T, k store.Key, b []byte) {
				if err := os.WriteFile(entryFile(t, nsDir(k)), b, 0o600); err != nil {
					t.Fatal(err)
				}
			},
		}
	case "sqlite", "postgres", "mariadb":
		table := "corrupt_" + tag
		var u string
		switch tg.name {
		case "sqlite":
			u = "sqlite://" + filepath.Join(t.TempDir(), "cache.db") + "?table=" + table
		case "postgres":
			u = srv.URL + "&table=" + table
		default:
			u = mysqlURL(t, srv, table)
		}
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := sqlurl.Parse(pu)
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open(cfg.Driver, cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		p1, p2, p3 := "?", "?", "?"
		if tg.name == "postgres" {
			p1, p2, p3 = "$1", "$2", "$3"
		}
		return engine{
			url: u,
			read: func(t *testing.T, k store.Key) []byte {
				var b []byte
				q := fmt.Sprintf("SELECT value FROM %s WHERE namespace = %s AND id = %s", table, p1, p2)
				if err := db.QueryRowContext(ctx, q, k.Namespace, k.ID).Scan(&b); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				return b
			},
			write: func(t *testing.T, k store.Key, b []byte) {
				q := fmt.Sprintf("UPDATE %s SET value = %s WHERE namespace = %s AND id = %s", table, p1, p2, p3)
				res, err := db.ExecContext(ctx, q, b, k.Namespace, k.ID)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				if n, _ := res.RowsAffected(); n != 1 && tg.name != "mariadb" { // MySQL counts changed rows only
					t.Fatalf("%s: %d rows", q, n)
				}
			},
		}
	case "redis":
		prefix := "corrupt-" + tag
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { rdb.Close() })
		// The store's key name (redisstore.keyer), for a namespace and ID without
		// characters it escapes; the test checks that it exists.
		name := func(t *testing.T, k store.Key) string {
			n := prefix + ":{" + k.Namespace + ":" + k.ID + "}:v"
			if c, err := rdb.Exists(ctx, n).Result(); err != nil || c != 1 {
				t.Fatalf("no entry at %s: %v", n, err)
			}
			return n
		}
		return engine{
			url: srv.URL + "?prefix=" + prefix,
			read: func(t *testing.T, k store.Key) []byte {
				b, err := rdb.Get(ctx, name(t, k)).Bytes()
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			write: func(t *testing.T, k store.Key, b []byte) {
				if err := rdb.Set(ctx, name(t, k), b, 0).Err(); err != nil {
					t.Fatal(err)
				}
			},
		}
	case "memcached":
		prefix := "corrupt-" + tag
		mc := memcache.New(srv.Addr)
		// The store's item name for an entry (memcachestore.itemKey).
		name := func(k store.Key) string {
			sum := sha256.Sum256([]byte(k.Namespace + "\x00" + k.ID))
			return prefix + ":e:" + base64.RawURLEncoding.EncodeToString(sum[:])
		}
		return engine{
			url: "memcache://" + srv.Addr + "?prefix=" + prefix,
			read: func(t *testing.T, k store.Key) []byte {
				it, err := mc.Get(name(k))
				if err != nil {
					t.Fatalf("memcached item %s: %v", name(k), err)
				}
				return it.Value
			},
			write: func(t *testing.T, k store.Key, b []byte) {
				if err := mc.Set(&memcache.Item{Key: name(k), Value: b}); err != nil {
					t.Fatal(err)
				}
			},
		}
	case "ferretdb":
		coll := "corrupt_" + tag
		client, err := mongo.Connect(options.Client().ApplyURI(srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Disconnect(ctx) })
		c := client.Database("cachier_torture").Collection(coll)
		filter := func(k store.Key) bson.D { return bson.D{{Key: "ns", Value: k.Namespace}, {Key: "id", Value: k.ID}} }
		return engine{
			url: strings.TrimSuffix(srv.URL, "/") + "/cachier_torture?collection=" + coll,
			read: func(t *testing.T, k store.Key) []byte {
				raw, err := c.FindOne(ctx, filter(k)).Raw()
				if err != nil {
					t.Fatal(err)
				}
				_, data, ok := raw.Lookup("value").BinaryOK()
				if !ok {
					t.Fatalf("document has no binary value: %v", raw)
				}
				return data
			},
			write: func(t *testing.T, k store.Key, b []byte) {
				v := any(bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: b})
				if bytes.Equal(b, foreignType) {
					v = "not binary at all" // a field of the wrong BSON type
				}
				res, err := c.UpdateOne(ctx, filter(k), bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: v}}}})
				if err != nil || res.MatchedCount != 1 {
					t.Fatalf("UpdateOne = %+v, %v", res, err)
				}
			},
		}
	case "minio":
		prefix := "corrupt-" + tag + "/"
		client := s3.New(s3.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
			Credentials:                credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
			Logger:                     logging.Nop{},
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		})
		const bucket = "cachier-torture"
		// The store's object name (s3store.objectName, short form), for a namespace and
		// ID of safe characters and '/'; the test checks that it exists.
		name := func(t *testing.T, k store.Key) string {
			n := prefix + strings.ReplaceAll(k.Namespace, "/", "%2F") + "/e/" + k.ID
			if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(n)}); err != nil {
				t.Fatalf("no entry at %s: %v", n, err)
			}
			return n
		}
		return engine{
			url: s3URL(srv, strings.TrimSuffix(prefix, "/")),
			read: func(t *testing.T, k store.Key) []byte {
				out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(name(t, k))})
				if err != nil {
					t.Fatal(err)
				}
				defer out.Body.Close()
				b, err := io.ReadAll(out.Body)
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			write: func(t *testing.T, k store.Key, b []byte) {
				_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(name(t, k)), Body: bytes.NewReader(b)})
				if err != nil {
					t.Fatal(err)
				}
			},
		}
	}
	t.Skipf("no raw engine access for %s", tg.name)
	return engine{}
}

// foreignType asks an engine that types its fields to store a value of the wrong type.
var foreignType = []byte("\x00foreign-type\x00")

// entryFile finds the one entry file under a filestore root.
func entryFile(t *testing.T, root string) string {
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := d.Name()
		if d.Type().IsRegular() && !strings.HasPrefix(n, ".") && !strings.HasSuffix(n, ".lease") {
			found = append(found, path)
		}
		return nil
	})
	if err != nil || len(found) != 1 {
		t.Fatalf("entry files under %s: %v, %v; want one", root, found, err)
	}
	return found[0]
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestCorruptionThroughCachier writes damaged and foreign bytes into each engine
// where the store keeps an entry, then calls through cachier: every variant is a miss
// counted in Stats().DecodeErrors (a bit flipped in a store's own unchecksummed header
// may instead leave the genuine value), never a panic and never a wrong value.
func TestCorruptionThroughCachier(t *testing.T) {
	for _, tg := range targets {
		if tg.name == "redis-cluster" {
			continue // same records as redis
		}
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			eng := engineFor(t, tg, sharedServer(t, tg.kind))
			st, err := store.Open(ctx, eng.url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ns := "corrupt/" + randHex()
			const key = 7
			n := 0
			quiet := cachier.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
			f, err := cachier.Wrap(func(_ context.Context, k int) (Value, error) {
				n++
				return NewValue(k, fmt.Sprintf("fresh.%d", n)), nil
			}, cachier.Name(ns), cachier.WithStore(st), cachier.WithKey(func(k int) (string, error) { return fmt.Sprint(k), nil }), quiet)
			if err != nil {
				t.Fatal(err)
			}
			k, _ := f.Key(key)
			genuineValue := NewValue(key, "genuine")
			if err := f.Precache(ctx, key, genuineValue); err != nil {
				t.Fatal(err)
			}
			genuine := eng.read(t, k)
			e, err := st.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			env := e.Value // the envelope cachier wrote; the engine's bytes may frame it
			envAt := bytes.Index(genuine, env)

			// A valid entry of another function, with a different result type, under the
			// same ID: right framing, wrong contents.
			other, err := cachier.Wrap(func(_ context.Context, k int) (string, error) { return "a string", nil },
				cachier.Name(ns+"/other"), cachier.WithStore(st), cachier.WithKey(func(k int) (string, error) { return fmt.Sprint(k), nil }), quiet)
			if err != nil {
				t.Fatal(err)
			}
			type variant struct {
				name        string
				b           []byte
				mayBeIntact bool // a flip in the store's own header that nothing checks
			}
			flip := func(i int) []byte {
				b := bytes.Clone(genuine)
				b[i] ^= 0x10
				return b
			}
			vs := []variant{
				{"truncated to half", genuine[:len(genuine)/2], false},
				{"truncated to 1 byte", genuine[:1], false},
				{"empty", []byte{}, false},
				{"oversized (+256 KiB)", append(bytes.Clone(genuine), randBytes(256<<10)...), false},
				{"foreign: random", randBytes(64), false},
				{"foreign: text", []byte("hello, world"), false},
				{"foreign: JSON of the value", []byte(`{"Key":7,"Token":"genuine","MAC":"00"}`), false},
			}
			positions := []int{0, 5, len(genuine) / 3, len(genuine) / 2, len(genuine) - 1}
			if envAt > 0 {
				positions = append(positions, envAt-1) // the last byte of the store's own framing
			}
			for _, i := range positions {
				inEnv := envAt >= 0 && i >= envAt && i < envAt+len(env)
				where := "store header"
				if inEnv {
					where = "envelope"
				}
				vs = append(vs, variant{fmt.Sprintf("bit flip at %d/%d (%s)", i, len(genuine), where), flip(i), !inEnv && envAt >= 0})
			}
			if tg.name == "ferretdb" {
				vs = append(vs, variant{"foreign: field of another BSON type", foreignType, false})
			}
			// Last, because it needs the other function's entry to exist.
			if _, err := other.Call(ctx, key); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, variant{"foreign: another function's entry (string result)", nil, false})

			misses, intact := 0, 0
			for _, v := range vs {
				b := v.b
				if b == nil {
					ok, _ := other.Key(key)
					b = eng.read(t, ok)
				}
				eng.write(t, k, b)
				before := f.Stats()
				got, err := f.Call(ctx, key)
				after := f.Stats()
				if err != nil {
					t.Errorf("%s: Call: %v", v.name, err)
					continue
				}
				if err := got.Check(key); err != nil {
					t.Errorf("%s: WRONG VALUE: %v", v.name, err)
					continue
				}
				switch {
				case got.Token == fmt.Sprintf("fresh.%d", n) && after.Computations == before.Computations+1:
					if after.DecodeErrors != before.DecodeErrors+1 {
						t.Errorf("%s: a miss, but DecodeErrors went %d -> %d (store errors %d -> %d)", v.name,
							before.DecodeErrors, after.DecodeErrors, before.StoreErrors, after.StoreErrors)
					}
					misses++
				case v.mayBeIntact && got == genuineValue:
					intact++
				default:
					t.Errorf("%s: got %+v (computations %d -> %d); want a fresh computation", v.name, got,
						before.Computations, after.Computations)
				}
				// Put the genuine entry back for the next variant.
				if err := f.Precache(ctx, key, genuineValue); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := f.Call(ctx, key); err != nil || got != genuineValue {
				t.Errorf("after the damage, a clean entry = %+v, %v; want the genuine value", got, err)
			}
			t.Logf("%d variants: %d misses counted as decode errors, %d header flips left the value intact; "+
				"engine bytes %d, envelope %d at offset %d", len(vs), misses, intact, len(genuine), len(env), envAt)
		})
	}
}
