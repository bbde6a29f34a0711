package mongostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// connect returns a client on the shared FerretDB, disconnected when the test ends.
func connect(t testing.TB) *mongo.Client {
	t.Helper()
	srv := testserver.FerretDB(t)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

type harness struct{ client *mongo.Client }

func (h harness) MakeStore(ctx context.Context, t *testing.T) (store.Driver, error) {
	return New(h.client.Database("cachier_test").Collection("conformance"), nil)
}

func (harness) Close() {}

// NativeTTL makes the storetest.NativeTTLHarness: how long until the TTL index's
// field says the server may remove the entry, or -1 when the document has none.
func (harness) NativeTTL(ctx context.Context, d store.Driver, k store.Key) (time.Duration, error) {
	s := store.Unwrap(d).(*Store)
	raw, err := s.coll.FindOne(ctx, bson.D{{Key: fID, Value: docID(k)}}).Raw()
	if err != nil {
		return 0, err
	}
	v, err := raw.LookupErr(fExpireAt)
	if err != nil {
		return -1, nil
	}
	dt, ok := v.DateTimeOK()
	if !ok {
		return 0, fmt.Errorf("%s is a %s", fExpireAt, v.Type)
	}
	return time.Until(time.UnixMilli(dt)), nil
}

func TestConformance(t *testing.T) {
	client := connect(t)
	storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return harness{client} },
		storetest.Capabilities{})
}

// filtersHarness makes stores that read by $in and delete filtered on the value, as
// on MongoDB, although the server is FerretDB.
type filtersHarness struct{ harness }

func (h filtersHarness) MakeStore(ctx context.Context, t *testing.T) (store.Driver, error) {
	s, err := New(h.client.Database("cachier_test").Collection("conformance"), nil)
	if err == nil {
		s.filters = true
	}
	return s, err
}

// The miss path as on MongoDB (the conformance tests above run FerretDB's).
func TestConformanceFilters(t *testing.T) {
	client := connect(t)
	storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return filtersHarness{harness{client}} },
		storetest.Capabilities{})
}

// newStore returns a store on a fresh collection of the shared FerretDB.
func newStore(t testing.TB, opts *Options) (*Store, *mongo.Collection) {
	t.Helper()
	client := connect(t)
	coll := client.Database("cachier_test").Collection(fmt.Sprintf("t%d", time.Now().UnixNano()))
	t.Cleanup(func() { _ = coll.Drop(context.Background()) })
	s, err := New(coll, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, coll
}

// TestGarbledDocuments writes documents the store did not write where it looks, and
// checks that each is a miss matching ErrCorrupt, never a value, and that Entries
// lists none whose id, stored_at or size is garbled but reports ErrCorrupt instead.
func TestGarbledDocuments(t *testing.T) {
	s, coll := newStore(t, nil)
	ctx := context.Background()
	k := store.Key{Namespace: "ns", ID: "k"}
	id := docID(k)
	at := time.Now()
	good := func() bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: fNS, Value: k.Namespace}, {Key: fKeyID, Value: k.ID},
			{Key: fStoredAt, Value: at.UnixNano()}, {Key: fSize, Value: int64(1)}, {Key: fValue, Value: bson.Binary{Data: []byte("v")}}}
	}
	with := func(name string, v any) bson.D {
		d := good()
		for i := range d {
			if d[i].Key == name {
				if v == nil {
					return append(d[:i], d[i+1:]...)
				}
				d[i].Value = v
			}
		}
		return d
	}
	for _, tc := range []struct {
		name   string
		doc    bson.D
		get    bool // a field Get reads is garbled: it must miss with ErrCorrupt
		listed bool // a field Entries lists is garbled: it must report ErrCorrupt
	}{
		{"no value", with(fValue, nil), true, false},
		{"string value", with(fValue, "v"), true, false},
		{"uuid value", with(fValue, bson.Binary{Subtype: bson.TypeBinaryUUID, Data: make([]byte, 16)}), true, false},
		{"no stored_at", with(fStoredAt, nil), true, true},
		{"date stored_at", with(fStoredAt, bson.NewDateTimeFromTime(at)), true, true},
		// A double cannot hold today's Unix nanoseconds exactly: read as a number,
		// it would be a time some hundred nanoseconds off.
		{"double stored_at", with(fStoredAt, float64(at.UnixNano())), true, true},
		{"int32 stored_at", with(fStoredAt, int32(1)), true, true},
		{"boolean stored_at", with(fStoredAt, true), true, true},
		{"null stored_at", with(fStoredAt, bson.Null{}), true, true},
		{"double size", with(fSize, 1.0), false, true},
		{"string expire_at", append(good(), bson.E{Key: fExpireAt, Value: "tomorrow"}), true, true},
		{"other namespace", with(fNS, "other"), true, false},
		{"other id", with(fKeyID, "other"), true, false},
		{"numeric id", with(fKeyID, 7), true, true},
		{"empty document", bson.D{{Key: "_id", Value: id}, {Key: fNS, Value: k.Namespace}}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, tc.doc, options.Replace().SetUpsert(true)); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, k); tc.get && (!errors.Is(err, store.ErrNotFound) || !errors.Is(err, ErrCorrupt)) {
				t.Errorf("Get over %s = %q at %v, %v; want an error matching store.ErrNotFound and ErrCorrupt", tc.name, got.Value, got.StoredAt, err)
			}
			if !tc.listed {
				return
			}
			n := 0
			for info, err := range s.Entries(ctx, k.Namespace) {
				n++
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("Entries over %s yields %+v, %v; want an error matching ErrCorrupt", tc.name, info, err)
				}
			}
			if n != 1 {
				t.Errorf("Entries over %s yields %d results; want 1", tc.name, n)
			}
		})
	}
	// The well-formed document reads, and is listed.
	if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, good()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, k); err != nil || string(got.Value) != "v" || !got.StoredAt.Equal(time.Unix(0, at.UnixNano())) {
		t.Errorf("Get of a good document = %q at %v, %v; want \"v\" at %v", got.Value, got.StoredAt, err, at)
	}
	for info, err := range s.Entries(ctx, k.Namespace) {
		if err != nil || info.Key != k || info.Size != 1 || !info.StoredAt.Equal(time.Unix(0, at.UnixNano())) {
			t.Errorf("Entries of a good document: %+v, %v", info, err)
		}
	}
}

// TestConcurrentFirstUse has many stores (as many processes would) create the same
// collection and indexes at once.
func TestConcurrentFirstUse(t *testing.T) {
	_, coll := newStore(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			s, err := New(coll, nil)
			if err != nil {
				errc <- err
				return
			}
			if err := s.Set(ctx, store.Key{Namespace: "ns", ID: fmt.Sprint(i)}, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
				errc <- err
			}
			if _, err := store.Adapt(s).Acquire(ctx, store.Key{Namespace: "ns", ID: fmt.Sprint(i)}, store.Owner{Token: fmt.Sprint(i)}, time.Minute); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("concurrent first use: %v", err)
	}
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sp := range specs {
		found = found || sp.Name == "cachier_ns_stored_at"
	}
	if !found {
		t.Errorf("index cachier_ns_stored_at missing: %+v", specs)
	}
}

func TestTooLarge(t *testing.T) {
	s, _ := newStore(t, nil)
	err := s.Set(context.Background(), store.Key{Namespace: "ns", ID: "big"}, store.Entry{Value: make([]byte, MaxDocumentSize), StoredAt: time.Now()})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("Set of %d bytes: %v; want ErrTooLarge", MaxDocumentSize, err)
	}
}

func TestNewRejects(t *testing.T) {
	db := (&mongo.Client{}).Database("d")
	for _, tc := range []struct {
		coll string
		opts *Options
	}{
		{"", nil},
		{"system.x", nil},
		{"a b", nil},
		{"a$b", nil},
	} {
		if _, err := New(db.Collection(tc.coll), tc.opts); err == nil {
			t.Errorf("New(%q, %+v): no error", tc.coll, tc.opts)
		}
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("New(nil): no error")
	}
}

func TestDocID(t *testing.T) {
	a := docID(store.Key{Namespace: "a:b", ID: "c"})
	b := docID(store.Key{Namespace: "a", ID: "b:c"})
	if a == b {
		t.Errorf("docID collides: %q", a)
	}
}

// TestAbandonedClaim checks that a swapper that died between claiming a value and
// swapping it delays other swaps of that value by at most the claim's TTL, and never
// blocks them; and that no listing shows a claim.
func TestAbandonedClaim(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s, _ := newStore(t, &Options{Clock: clock})
	ctx := context.Background()
	k := store.Key{Namespace: "ns", ID: "k"}
	if ok, err := s.Swap(ctx, k, nil, &store.Entry{Value: []byte("a"), StoredAt: now}); err != nil || !ok {
		t.Fatalf("Swap(nil -> a) = %v, %v; want true", ok, err)
	}
	if ok, err := s.Swap(ctx, k, nil, &store.Entry{Value: []byte("b"), StoredAt: now}); err != nil || ok {
		t.Fatalf("Swap(nil -> b) over a = %v, %v; want false", ok, err)
	}
	if _, err := s.claim(ctx, docID(k), []byte("a")); err != nil { // and then "die"
		t.Fatal(err)
	}
	if ok, err := s.Swap(ctx, k, []byte("a"), &store.Entry{Value: []byte("b"), StoredAt: now}); err != nil || ok {
		t.Fatalf("Swap(a -> b) during a fresh claim = %v, %v; want false", ok, err)
	}
	if nss, err := s.Namespaces(ctx); err != nil || !slices.Equal(nss, []string{"ns"}) {
		t.Errorf("Namespaces = %q, %v; want [ns]", nss, err)
	}
	advance(ClaimTTL + time.Second)
	if ok, err := s.Swap(ctx, k, []byte("a"), &store.Entry{Value: []byte("b"), StoredAt: now}); err != nil || !ok {
		t.Fatalf("Swap(a -> b) after the claim expired = %v, %v; want true", ok, err)
	}
	if ok, err := s.Swap(ctx, k, []byte("a"), nil); err != nil || ok {
		t.Fatalf("Swap(a -> nil) over b = %v, %v; want false", ok, err)
	}
	if ok, err := s.Swap(ctx, k, []byte("b"), nil); err != nil || !ok {
		t.Fatalf("Swap(b -> nil) = %v, %v; want true", ok, err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Swap(b -> nil): %v; want ErrNotFound", err)
	}
	// Only the abandoned claim is left, and it is no entry.
	if n, err := s.coll.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Errorf("%d documents left, want 1 (the abandoned claim) (%v)", n, err)
	}
}

// The entries collection has a TTL index on expire_at, so the server itself removes
// expired entries.
func TestTTLIndex(t *testing.T) {
	c := connect(t)
	ctx := context.Background()
	s, err := New(c.Database("cachier_test").Collection("ttl_"+fmt.Sprint(time.Now().UnixNano())), nil)
	if err != nil {
		t.Fatal(err)
	}
	k := store.Key{Namespace: "ns", ID: "k"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if !s.ExpiresNatively() {
		// FerretDB refuses TTL indexes: the store must say so, and still expire.
		if _, err := store.Adapt(s).Get(ctx, k); err != nil {
			t.Fatal(err)
		}
		return
	}
	specs, err := s.coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range specs {
		if sp.Name == "cachier_expire_at" && sp.ExpireAfterSeconds != nil && *sp.ExpireAfterSeconds == 0 {
			return
		}
	}
	t.Fatalf("no TTL index on %s among %+v", fExpireAt, specs)
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, db, coll, uri string
	}{
		{url: "mongodb://127.0.0.1:27017/app", db: "app", coll: "cachier", uri: "mongodb://127.0.0.1:27017/app"},
		{url: "mongodb://u:p@a:1,b:2/app?collection=memo&authSource=admin",
			db: "app", coll: "memo", uri: "mongodb://u:p@a:1,b:2/app?authSource=admin"},
		{url: "mongodb+srv://cluster.example.com/app?retryWrites=true&w=majority",
			db: "app", coll: "cachier", uri: "mongodb+srv://cluster.example.com/app?retryWrites=true&w=majority"},
		{url: "MONGODB://h/app?replicaSet=rs0&collection=c", db: "app", coll: "c", uri: "mongodb://h/app?replicaSet=rs0"},
	} {
		c, err := parseURL(storetest.MustParseURL(t, tc.url))
		if err != nil {
			t.Errorf("parseURL(%q): %v", tc.url, err)
			continue
		}
		if c.database != tc.db || c.collection != tc.coll || c.uri != tc.uri {
			t.Errorf("parseURL(%q) = %+v; want db %q coll %q uri %q", tc.url, c, tc.db, tc.coll, tc.uri)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct {
		url, want string
	}{
		{"redis://h/app", "not mongodb"},
		{"mongodb:h", "want mongodb://host/database"},
		{"mongodb:///app", "want mongodb://host/database"},
		{"mongodb://h", "no database"},
		{"mongodb://h/", "no database"},
		{"mongodb://user:hunter2@h", "no database"},
		{"mongodb://user:hunter2@h/app?nope=1", `unknown parameter "nope"; accepted: collection, and MongoDB connection string options`},
		{"mongodb://h/app#x", "fragment"},
		{"mongodb://h/app?collection=a%20b", "collection"},
		{"mongodb://h/app?collection=system.users", "reserved"},
		{"mongodb://h/app?lease_collection=l", `parameter "lease_collection" is no longer used`},
		{"mongodb://h/app?version_collection=v", `parameter "version_collection" is no longer used`},
		{"mongodb://h/app?collection=a&collection=b", "given 2 times"},
		{"mongodb://h/app?a=%zz", "query"},
		{"mongodb://h/app?connectTimeoutMS=soon", "connecttimeoutms"},
		{"mongodb+srv://h:27017/app", "port"},
	} {
		_, err := parseURL(storetest.MustParseURL(t, tc.url))
		// want is looked for whatever its case: the driver's messages are not ours.
		if storetest.CheckBadURL(t, tc.url, err, "", "hunter2") &&
			!strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
			t.Errorf("parseURL(%q) = %v; want an error containing %q", tc.url, err, tc.want)
		}
	}
}

func TestOpen(t *testing.T) {
	u := strings.TrimSuffix(testserver.FerretDB(t).URL, "/") + "/cachier_test?collection=opened"
	s, ms := storetest.Opened[*Store](t, u)
	if ms.client == nil || ms.coll.Name() != "opened" {
		t.Fatalf("Open = %#v; want an owning *Store on collection opened", ms)
	}
	k := store.Key{Namespace: "open", ID: "k"}
	if _, err := s.Get(context.Background(), k); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get through an opened store: %v; want a miss", err)
	}
	_, err := store.Open(context.Background(), "mongodb://h/app?nope=1")
	storetest.CheckBadURL(t, "mongodb://h/app?nope=1", err, "nope", "")
}

// FuzzParseURL checks that the parser never panics, never dials or resolves, and that
// whatever it accepts names a database and valid collections.
func FuzzParseURL(f *testing.F) {
	storetest.FuzzURL(f, []string{
		"mongodb://127.0.0.1:27017/app", "mongodb://u:p@a:1,b:2/app?collection=c&authSource=admin",
		"mongodb+srv://cluster.example.com/app?w=majority", "mongodb://h/app?lease_collection=l&collection=c",
		"mongodb://h/app?tls=true&tlsInsecure=true", "mongodb://%2Ftmp%2Fmongo.sock/app",
	}, parseURL, func(t *testing.T, raw string, c config) {
		if c.database == "" || ValidateCollectionName(c.collection) != nil {
			t.Errorf("parseURL(%q) accepted %+v", raw, c)
		}
	})
}

// BenchmarkGet compares the store's Get with the driver's own FindOne by _id of the same
// document on the same server, hit and miss. Read the ratios from one run:
//
//	go test -run '^$' -bench 'Get$' ./store/mongostore
func BenchmarkGet(b *testing.B) {
	s, coll := newStore(b, nil)
	ctx := context.Background()
	k, missing := storetest.BenchEntry(b, s)
	id, missingID := docID(k), docID(missing)

	b.Run("hit/store", storetest.BenchGetHit(s, k))
	b.Run("hit/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
			if err != nil || len(raw) == 0 {
				b.Fatal(err)
			}
		}
	})
	b.Run("miss/store", storetest.BenchGetMiss(s, missing))
	b.Run("miss/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: missingID}}).Raw(); !errors.Is(err, mongo.ErrNoDocuments) {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStore runs the shared store benchmarks.
func BenchmarkStore(b *testing.B) {
	s, _ := newStore(b, nil)
	storetest.RunBenchmarks(b, s)
}
