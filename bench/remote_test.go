package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/bradfitz/gomemcache/memcache"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memcachestore"
	"github.com/cachier-go/cachier/store/mongostore"
	"github.com/cachier-go/cachier/store/s3store"
	"github.com/cachier-go/cachier/store/sqlstore"
	_ "github.com/cachier-go/cachier/store/sqlstore/sqlurl" // postgres://, mysql://, sqlite:// as users open them
	"github.com/go-sql-driver/mysql"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sqlEngine is one SQL engine of the sql section.
type sqlEngine struct {
	name    string
	dialect sqlstore.Dialect
	// url names the store as a user opens it (store.Open, package sqlurl), so that
	// the figures are those of what users get: on PostgreSQL the pgx pipeline and the
	// listener, on SQLite WAL and synchronous=NORMAL, the pool sizes. The raw
	// statements run on the store's own *sql.DB, with the same settings.
	url func(t *testing.T) string
	// upsert and selectQ are the raw statements on the raw table.
	create, upsert, selectQ string
}

// mysqlURL is the mysql:// URL of the test server's go-sql-driver DSN.
func mysqlURL(t *testing.T) string {
	cfg, err := mysql.ParseDSN(testserver.MariaDB(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "mysql", User: url.UserPassword(cfg.User, cfg.Passwd), Host: cfg.Addr, Path: "/" + cfg.DBName}
	if cfg.Passwd == "" {
		u.User = url.User(cfg.User)
	}
	return u.String()
}

// withTable adds the table parameter to a store URL.
func withTable(u, table string) string {
	if strings.Contains(u, "?") {
		return u + "&table=" + table
	}
	return u + "?table=" + table
}

var sqlEngines = []sqlEngine{
	{
		name: "PostgreSQL", dialect: sqlstore.Postgres,
		url:     func(t *testing.T) string { return testserver.Postgres(t).URL },
		create:  "CREATE TABLE IF NOT EXISTS bench_raw (k TEXT PRIMARY KEY, v BYTEA NOT NULL)",
		upsert:  "INSERT INTO bench_raw (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
		selectQ: "SELECT v FROM bench_raw WHERE k = $1",
	},
	{
		name: "MariaDB", dialect: sqlstore.MySQL,
		url:     mysqlURL,
		create:  "CREATE TABLE IF NOT EXISTS bench_raw (k VARCHAR(255) PRIMARY KEY, v BLOB NOT NULL)",
		upsert:  "INSERT INTO bench_raw (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)",
		selectQ: "SELECT v FROM bench_raw WHERE k = ?",
	},
	{
		name: "SQLite", dialect: sqlstore.SQLite,
		url:     func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "bench.db") },
		create:  "CREATE TABLE IF NOT EXISTS bench_raw (k TEXT PRIMARY KEY, v BLOB NOT NULL)",
		upsert:  "INSERT INTO bench_raw (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
		selectQ: "SELECT v FROM bench_raw WHERE k = ?",
	},
}

func sqlSubjects(t *testing.T) []subject {
	var subs []subject
	for _, e := range sqlEngines {
		// A missing server skips only its engine: probe it in a subtest. The servers
		// are shared by the test binary, so they outlive the subtest.
		var u string
		if e.dialect == sqlstore.SQLite {
			u = e.url(t)
		} else if !t.Run(e.name, func(t *testing.T) { u = e.url(t) }) || u == "" {
			t.Logf("sql: %s not measured", e.name)
			continue
		}
		func() {
			ctx := context.Background()
			opened, err := store.Open(ctx, withTable(u, "bench_entries"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { opened.Close() })
			st, ok := store.Unwrap(opened).(*sqlstore.Store)
			if !ok {
				t.Fatalf("%s: store.Open made a %T, not a *sqlstore.Store", e.name, store.Unwrap(opened))
			}
			db := st.DB()
			if _, err := db.ExecContext(ctx, e.create); err != nil {
				t.Fatal(err)
			}
			sel, err := db.PrepareContext(ctx, e.selectQ)
			if err != nil {
				t.Fatal(err)
			}
			ups, err := db.PrepareContext(ctx, e.upsert)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, storeSubjects(t, e.name, "sql", st, rawOps{
				impl: "raw SELECT / upsert", note: "prepared, database/sql, on the store's *sql.DB",
				set: func(ctx context.Context, k string) error {
					_, err := ups.ExecContext(ctx, k, payload)
					return err
				},
				get: func(ctx context.Context, k string) (bool, error) {
					var v []byte
					err := sel.QueryRowContext(ctx, k).Scan(&v)
					if errors.Is(err, sql.ErrNoRows) {
						return false, nil
					}
					return err == nil, err
				},
			})...)
		}()
	}
	if len(subs) == 0 {
		t.Skip("no SQL engine available")
	}
	return subs
}

func mongoSubjects(t *testing.T) []subject {
	srv := testserver.FerretDB(t)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() { client.Disconnect(ctx) })
	db := client.Database("cachier_bench_" + randHex(4))
	t.Cleanup(func() { db.Drop(ctx) })
	st, err := mongostore.New(db.Collection("entries"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	raw := db.Collection("raw")
	addNote("mongodb: the server is FerretDB (MongoDB wire protocol on SQLite), the one the tests use; numbers on a real mongod differ.")
	return storeSubjects(t, "", "mongo", st, rawOps{
		impl: "raw FindOne / ReplaceOne upsert", note: "mongo-driver v2",
		set: func(ctx context.Context, k string) error {
			_, err := raw.ReplaceOne(ctx, bson.D{{Key: "_id", Value: k}},
				bson.D{{Key: "_id", Value: k}, {Key: "v", Value: payload}}, options.Replace().SetUpsert(true))
			return err
		},
		get: func(ctx context.Context, k string) (bool, error) {
			_, err := raw.FindOne(ctx, bson.D{{Key: "_id", Value: k}}).Raw()
			if errors.Is(err, mongo.ErrNoDocuments) {
				return false, nil
			}
			return err == nil, err
		},
	})
}

func memcachedSubjects(t *testing.T) []subject {
	addr := testserver.Memcached(t).Addr
	c := memcache.New(addr)
	// Addr, as the memcache:// URL of one server sets it: the store pipelines its
	// batches on connections of its own; the raw peer uses the client.
	st, err := memcachestore.New(c, &memcachestore.Options{Prefix: "bench" + randHex(3), Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return storeSubjects(t, "", "memcache", st, rawOps{
		impl: "raw Get / Set", note: "gomemcache",
		set: func(_ context.Context, k string) error {
			return c.Set(&memcache.Item{Key: "raw:" + k, Value: payload})
		},
		get: func(_ context.Context, k string) (bool, error) {
			_, err := c.Get("raw:" + k)
			if errors.Is(err, memcache.ErrCacheMiss) {
				return false, nil
			}
			return err == nil, err
		},
	})
}

func s3Subjects(t *testing.T) []subject {
	srv := testserver.MinIO(t)
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	const bucket = "cachier-bench"
	prefix := "bench-" + randHex(4) + "/"
	st, err := s3store.New(client, bucket, &s3store.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	name := func(k string) *string { return aws.String(prefix + "raw/" + k) }
	return storeSubjects(t, "", "s3", store.Adapt(st), rawOps{
		impl: "raw GetObject / PutObject", note: "aws-sdk-go-v2",
		set: func(ctx context.Context, k string) error {
			_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: name(k), Body: bytes.NewReader(payload)})
			return err
		},
		get: func(ctx context.Context, k string) (bool, error) {
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: name(k)})
			var nsk *s3types.NoSuchKey
			if errors.As(err, &nsk) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			defer out.Body.Close()
			if _, err := io.ReadAll(out.Body); err != nil {
				return false, fmt.Errorf("read %s: %w", strings.TrimPrefix(*name(k), prefix), err)
			}
			return true, nil
		},
	})
}
