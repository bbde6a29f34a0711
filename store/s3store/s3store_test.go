package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/s3store"
	"github.com/cachier-go/cachier/store/storetest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// testBucket is shared by the tests of one binary; each store gets its own prefix.
const testBucket = "cachier-test"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newClient returns a client for the shared MinIO server, as a user would configure it.
func newClient(tb testing.TB, secret string) (*s3.Client, *testserver.Server) {
	tb.Helper()
	srv := testserver.MinIO(tb)
	if secret == "" {
		secret = srv.SecretKey
	}
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, secret, ""),
	}), srv
}

// newStore returns a store with a fresh prefix in the shared bucket.
func newStore(tb testing.TB, opts *s3store.Options) (*s3store.Store, *s3.Client) {
	tb.Helper()
	client, _ := newClient(tb, "")
	var o s3store.Options
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = "test-" + randHex(6) + "/"
	}
	s, err := s3store.New(client, testBucket, &o)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s, client
}

type harness struct{}

func (harness) MakeStore(_ context.Context, t *testing.T) (store.Driver, error) {
	s, _ := newStore(t, nil)
	return s, nil
}

func (harness) Close() {}

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return harness{} }, storetest.Capabilities{})
}

// putRaw writes bytes at the object name of an entry or lease, as a foreign writer or a
// damaged disk would.
func putRaw(t *testing.T, client *s3.Client, name string, b []byte) {
	t.Helper()
	_, err := client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(testBucket), Key: &name, Body: bytes.NewReader(b),
	})
	if err != nil {
		t.Fatalf("PutObject(%q): %v", name, err)
	}
}

// objectNames lists the object names under prefix.
func objectNames(t *testing.T, client *s3.Client, prefix string) []string {
	t.Helper()
	var names []string
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: &prefix})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("ListObjectsV2: %v", err)
		}
		for _, o := range out.Contents {
			names = append(names, aws.ToString(o.Key))
		}
	}
	return names
}

func TestObjectLayout(t *testing.T) {
	ctx := context.Background()
	s, client := newStore(t, nil)
	k := store.Key{Namespace: "github.com/x/y.F", ID: "../../etc"}
	st := store.Adapt(s)
	if err := st.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	l, err := st.Acquire(ctx, k, store.Owner{Host: "h", PID: 1, Token: "t"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := objectNames(t, client, s.Prefix())
	want := []string{s.Prefix() + "%01github.com%2Fx%2Fy.F/e/%2E.%2F..%2Fetc", s.Prefix() + "github.com%2Fx%2Fy.F/e/%2E.%2F..%2Fetc"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("objects = %q, want %q", got, want)
	}
	if err := st.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReleaseAll(ctx, k.Namespace); err != nil {
		t.Fatal(err)
	}
	if err := st.Clear(ctx, k.Namespace); err != nil {
		t.Fatal(err)
	}
	if got := objectNames(t, client, s.Prefix()); len(got) != 0 {
		t.Errorf("objects after Release, ReleaseAll and Clear = %q, want none", got)
	}
}

func TestCorruptEntries(t *testing.T) {
	ctx := context.Background()
	s, client := newStore(t, nil)
	ns := "corrupt" // the prefix is fresh; a plain namespace keeps object names predictable
	good := store.Key{Namespace: ns, ID: "good"}
	if err := s.Set(ctx, good, store.Entry{Value: []byte("hello, world"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(s.Prefix() + ns + "/e/good")})
	if err != nil {
		t.Fatalf("the entry is not where the layout says: %v", err)
	}
	raw, _ := io.ReadAll(out.Body)
	out.Body.Close()

	flipped := bytes.Clone(raw)
	flipped[0] ^= 1 // in the record's magic
	// Damage to the value (a flipped bit, a truncation) is the envelope's to find: the
	// object carries no checksum of its own (see store.AppendRecord).
	damaged := map[string][]byte{
		"short":   raw[:10],
		"old":     []byte("cS3E\x01\x00\x00\x00 the layout before store.AppendRecord, with a CRC of its own"),
		"flipped": flipped,
		"foreign": []byte("<html>not ours</html> and some more bytes to pass the header"),
	}
	for id, b := range damaged {
		putRaw(t, client, s.Prefix()+ns+"/e/"+id, b)
	}
	for id := range damaged {
		e, err := s.Get(ctx, store.Key{Namespace: ns, ID: id})
		if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, s3store.ErrCorrupt) {
			t.Errorf("Get of a %s object = %q, %v; want an error matching store.ErrNotFound and ErrCorrupt", id, e.Value, err)
		}
	}
	// A one-byte tombstone is a record that Swap deleted: a plain miss. An empty
	// object is damage: a corrupt miss.
	putRaw(t, client, s.Prefix()+ns+"/e/empty", []byte{0})
	if e, err := s.Get(ctx, store.Key{Namespace: ns, ID: "empty"}); !errors.Is(err, store.ErrNotFound) || errors.Is(err, s3store.ErrCorrupt) {
		t.Errorf("Get of a tombstone = %q, %v; want a plain store.ErrNotFound", e.Value, err)
	}
	putRaw(t, client, s.Prefix()+ns+"/e/zero-length", nil)
	if e, err := s.Get(ctx, store.Key{Namespace: ns, ID: "zero-length"}); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, s3store.ErrCorrupt) {
		t.Errorf("Get of an empty object = %q, %v; want store.ErrNotFound and ErrCorrupt", e.Value, err)
	}
	// Listing skips them; DeleteBefore removes them (they can never be read).
	for info, err := range s.Entries(ctx, ns) {
		if err != nil {
			t.Fatal(err)
		}
		if info.Key.ID != "good" {
			t.Errorf("Entries listed the corrupt %q", info.Key.ID)
		}
	}
	n, err := s.DeleteBefore(ctx, ns, time.Now().Add(-time.Hour))
	if err != nil || n != len(damaged)+2 {
		t.Errorf("DeleteBefore = %d, %v; want %d corrupt, empty and tombstone objects removed", n, err, len(damaged)+2)
	}
	if _, err := s.Get(ctx, good); err != nil {
		t.Errorf("the good entry: %v", err)
	}
	if err := s.Clear(ctx, ns); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptLeaseIsTakenOver(t *testing.T) {
	ctx := context.Background()
	s, client := newStore(t, nil)
	st := store.Adapt(s)
	ns := "lease"
	k := store.Key{Namespace: ns, ID: "k"}
	putRaw(t, client, s.Prefix()+"%01"+ns+"/e/k", []byte("{garbage"))
	o := store.Owner{Host: "h", PID: 1, Token: "tok-" + randHex(4)}
	l, err := st.Acquire(ctx, k, o, time.Minute)
	if err != nil {
		t.Fatalf("Acquire over a corrupt lease object: %v", err)
	}
	if _, err := st.Renew(ctx, l, time.Minute); err != nil {
		t.Errorf("Renew: %v", err)
	}
	if n, err := st.ReleaseAll(ctx, ns); err != nil || n != 1 {
		t.Errorf("ReleaseAll = %d, %v; want 1", n, err)
	}
}

// TestTakeoverRace has many stores (as many processes would) take over one expired
// lease at once, on the real server: exactly one wins, because a takeover is a
// PutObject with If-Match on the dead holder's ETag, and every other is told who holds
// it. Without the condition (a plain PutObject), several win.
func TestTakeoverRace(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Now())
	prefix := "test-" + randHex(6) + "/"
	ns := storetest.Namespace(t)
	k := store.Key{Namespace: ns, ID: "contended"}
	d, _ := newStore(t, &s3store.Options{Prefix: prefix})
	first := store.Adapt(d, store.WithClock(clk))
	old, err := first.Acquire(ctx, k, store.Owner{Host: "old", PID: 1, Token: "old-" + randHex(4)}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute) // the old holder died

	const n = 8
	var wg sync.WaitGroup
	leases := make([]store.Lease, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		d, _ := newStore(t, &s3store.Options{Prefix: prefix})
		s := store.Adapt(d, store.WithClock(clk))
		wg.Go(func() {
			<-start
			leases[i], errs[i] = s.Acquire(ctx, k, store.Owner{Host: fmt.Sprint("c", i), PID: i, Token: fmt.Sprint("tok-", i, "-", randHex(4))}, time.Minute)
		})
	}
	close(start)
	wg.Wait()
	var winner *store.Lease
	for i, err := range errs {
		if err == nil {
			if winner != nil {
				t.Fatalf("two contenders took over the same lease: %s and %s", winner.Owner, leases[i].Owner)
			}
			winner = &leases[i]
		}
	}
	if winner == nil {
		t.Fatalf("no contender took over an expired lease: %v", errors.Join(errs...))
	}
	if !winner.TakenOver {
		t.Error("the winner's lease does not report TakenOver")
	}
	for _, err := range errs {
		var held *store.HeldError
		if err != nil && (!errors.As(err, &held) || held.Holder.Owner != winner.Owner) {
			t.Errorf("a losing contender got %v; want a HeldError naming %s", err, winner.Owner)
		}
	}
	if _, err := first.Renew(ctx, old, time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Renew by the old holder after takeover: %v; want store.ErrLeaseLost", err)
	}
	if _, err := first.ReleaseAll(ctx, ns); err != nil {
		t.Fatal(err)
	}
}

func TestServerConditions(t *testing.T) {
	ctx := context.Background()
	s, client := newStore(t, nil)
	if err := s.Set(ctx, store.Key{Namespace: "ns", ID: "x"}, store.Entry{}); err != nil { // creates the bucket
		t.Fatal(err)
	}
	name := s.Prefix() + "conditions"
	put := func(ifNoneMatch, ifMatch *string) (*s3.PutObjectOutput, error) {
		return client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(testBucket), Key: &name, Body: strings.NewReader("x"),
			IfNoneMatch: ifNoneMatch, IfMatch: ifMatch,
		})
	}
	first, err := put(aws.String("*"), nil)
	if err != nil {
		t.Fatalf("PutObject If-None-Match on a new object: %v", err)
	}
	if _, err := put(aws.String("*"), nil); err == nil {
		t.Fatal("PutObject If-None-Match: * replaced an existing object; the server lacks conditional writes")
	}
	if _, err := put(nil, aws.String(`"0123456789abcdef0123456789abcdef"`)); err == nil {
		t.Fatal("PutObject If-Match with a wrong ETag succeeded")
	}
	if _, err := put(nil, first.ETag); err != nil {
		t.Fatalf("PutObject If-Match with the right ETag: %v", err)
	}
	_, err = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(testBucket), Key: &name, IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
	if _, herr := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: &name}); herr == nil {
		t.Logf("DeleteObject If-Match with a wrong ETag was refused (%v): Release is race-free here", err)
	} else {
		t.Logf("DeleteObject ignores If-Match on this server (err %v): Release has the small window documented", err)
	}
	_, _ = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(testBucket), Key: &name})
	_ = s.Clear(ctx, "ns")
}

func TestCreatesBucket(t *testing.T) {
	ctx := context.Background()
	client, _ := newClient(t, "")
	bucket := "cachier-new-" + randHex(4)
	s, err := s3store.New(client, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := store.Key{Namespace: "ns", ID: "id"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatalf("Set into a missing bucket: %v", err)
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("bucket not created: %v", err)
	}
	// A second store finds it there.
	s2, _ := s3store.New(client, bucket, nil)
	if _, err := s2.Get(ctx, k); err != nil {
		t.Errorf("Get through a second store: %v", err)
	}
	// A bucket deleted under the store is created again: the write that finds it gone
	// fails, and the next one creates it.
	_ = s.Clear(ctx, "ns")
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	_ = s.Set(ctx, k, store.Entry{Value: []byte("v")})
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v")}); err != nil {
		t.Errorf("Set after the bucket was deleted: %v", err)
	}
	_ = s.Clear(ctx, "ns")
	_, _ = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket})
}

// TestRawErrors checks that a failure other than a miss reaches the SDK's error types
// and that the secret key never shows.
func TestRawErrors(t *testing.T) {
	const secret = "wrong-secret-DO-NOT-LEAK"
	client, _ := newClient(t, secret)
	s, err := s3store.New(client, testBucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(context.Background(), store.Key{Namespace: "ns", ID: "id"})
	var apiErr smithy.APIError
	if err == nil || errors.Is(err, store.ErrNotFound) || !errors.As(err, &apiErr) {
		t.Fatalf("Get with a wrong secret: %v; want a smithy.APIError, not a miss", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q shows the secret", err)
	}
	t.Logf("wrong secret: %s (%v)", apiErr.ErrorCode(), err)
}

func TestOpenURL(t *testing.T) {
	srv := testserver.MinIO(t)
	ctx := context.Background()
	raw := fmt.Sprintf("s3://%s:%s@%s/url-%s?endpoint=%s&region=us-east-1&path_style=true",
		url.QueryEscape(srv.AccessKey), url.QueryEscape(srv.SecretKey), testBucket, randHex(4), url.QueryEscape(srv.URL))
	s, err := store.Open(ctx, raw)
	if err != nil {
		t.Fatalf("store.Open: %v", strings.ReplaceAll(err.Error(), srv.SecretKey, "xxxxx"))
	}
	defer s.Close()
	k := store.Key{Namespace: "ns", ID: "id"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("via url"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Get(ctx, k)
	if err != nil || string(e.Value) != "via url" {
		t.Fatalf("Get = %q, %v", e.Value, err)
	}
	_ = s.Clear(ctx, "ns")
}

func TestCancelledBeforeBucketCheck(t *testing.T) {
	client, _ := newClient(t, "")
	s, _ := s3store.New(client, "cachier-never-"+randHex(4), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, store.Key{Namespace: "ns", ID: "id"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: %v; want context.Canceled", err)
	}
}

// BenchmarkStore runs the shared benchmarks; BenchmarkGet compares Get with the SDK alone.
func BenchmarkStore(b *testing.B) {
	s, _ := newStore(b, nil)
	storetest.RunBenchmarks(b, s)
}

// BenchmarkGet compares Get with its floor, the SDK alone: on the same 1024 objects
// (256-byte values, cycled as RunBenchmarks does), Hit is Store.Get and RawGetObject is
// one GetObject read whole; Miss and RawGetObjectMiss read a missing object. Run with
// -count to interleave them: the shared server's noise then hits both alike.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	s, client := newStore(b, nil)
	const nkeys = 1024
	keys := make([]store.Key, nkeys)
	names := make([]string, nkeys)
	for i := range keys {
		keys[i] = store.Key{Namespace: "bench", ID: fmt.Sprintf("%064x", i)}
		if err := s.Set(ctx, keys[i], store.Entry{Value: make([]byte, 256), StoredAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
		names[i] = s.Prefix() + "bench/e/" + keys[i].ID
	}
	b.Cleanup(func() { _ = s.Clear(ctx, "bench") })
	b.Run("Hit", storetest.BenchGetHit(s, keys...))
	b.Run("RawGetObject", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: &names[i%nkeys]})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadAll(out.Body); err != nil {
				b.Fatal(err)
			}
			out.Body.Close()
			i++
		}
	})
	b.Run("Miss", storetest.BenchGetMiss(s, store.Key{Namespace: "bench", ID: "missing"}))
	missingName := s.Prefix() + "bench/e/missing"
	b.Run("RawGetObjectMiss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: &missingName}); err == nil {
				b.Fatal("found a missing object")
			}
		}
	})
}

// TestCounters covers what the conformance suite cannot: a damaged counter object is an
// error (never read as 0, which could revive invalidated entries), counters never show
// up as a namespace, and GetVersioned reads an entry and counters together.
func TestCounters(t *testing.T) {
	ctx := context.Background()
	d, client := newStore(t, nil)
	s := store.Adapt(d)
	vg := s.(store.VersionedGetter)
	name := "tag:" + randHex(4)
	v, err := vg.(store.Versioner).Bump(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	k := store.Key{Namespace: "ns", ID: "k"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e, vals, err := vg.GetVersioned(ctx, k, []string{name, "never-bumped"})
	if err != nil || string(e.Value) != "v" || len(vals) != 2 || vals[0] != v || vals[1] != 0 {
		t.Errorf("GetVersioned = %q, %v, %v; want \"v\", [%d 0]", e.Value, vals, err, v)
	}
	if _, vals, err := vg.GetVersioned(ctx, store.Key{Namespace: "ns", ID: "missing"}, []string{name}); !errors.Is(err, store.ErrNotFound) || vals != nil {
		t.Errorf("GetVersioned of a missing entry = %v, %v; want ErrNotFound and no versions", vals, err)
	}
	nss, err := s.Namespaces(ctx)
	if err != nil || len(nss) != 1 || nss[0] != "ns" {
		t.Errorf("Namespaces = %q, %v; want [ns]", nss, err)
	}
	putRaw(t, client, d.Prefix()+"%01/e/"+strings.ReplaceAll(name, ":", "%3A"), []byte("garbage"))
	if got, err := vg.(store.Versioner).Versions(ctx, []string{name}); !errors.Is(err, s3store.ErrCorrupt) {
		t.Errorf("Versions of a damaged counter = %v, %v; want ErrCorrupt", got, err)
	}
	if v2, err := vg.(store.Versioner).Bump(ctx, name); err != nil {
		t.Fatal(err)
	} else if got, err := vg.(store.Versioner).Versions(ctx, []string{name}); err != nil || got[0] != v2 {
		t.Errorf("Versions after Bump repaired it = %v, %v; want [%d]", got, err, v2)
	}
	_ = s.Clear(ctx, "ns")
}

// TestTombstonesAreNotCorrupt checks that listings skip a record Swap deleted (a
// one-byte tombstone) without reading it or warning that it is corrupt, as they warn
// of an object that is.
func TestTombstonesAreNotCorrupt(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var logged bytes.Buffer
	s, client := newStore(t, &s3store.Options{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))})
	ns := "tombstones"
	k := store.Key{Namespace: ns, ID: "deleted"}
	if ok, err := s.Swap(ctx, k, nil, &store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil || !ok {
		t.Fatalf("Swap(nil -> v) = %v, %v", ok, err)
	}
	if ok, err := s.Swap(ctx, k, []byte("v"), nil); err != nil || !ok {
		t.Fatalf("Swap(v -> nil) = %v, %v", ok, err)
	}
	putRaw(t, client, s.Prefix()+ns+"/e/garbled", []byte("<html>not ours</html> and some more bytes to pass the header"))
	for info, err := range s.Entries(ctx, ns) {
		t.Errorf("Entries over a tombstone and a corrupt object: %+v, %v", info, err)
	}
	mu.Lock()
	log := logged.String()
	mu.Unlock()
	if !strings.Contains(log, "/e/garbled") || strings.Contains(log, "/e/deleted") {
		t.Errorf("Entries logged:\n%s\nwant a warning about the garbled object and none about the tombstone", log)
	}
}

// lockedWriter serialises writes to w under mu, for a logger written to in parallel.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestForeignNamesLeftAlone checks that listings skip an object under a namespace's
// entries whose name this store would not write (here an escaped safe byte), even
// when its bytes read as an entry: Entries does not list it and DeleteBefore and
// Clear leave it.
func TestForeignNamesLeftAlone(t *testing.T) {
	ctx := context.Background()
	s, client := newStore(t, nil)
	ns := "foreign"
	if err := s.Set(ctx, store.Key{Namespace: ns, ID: "A"}, store.Entry{Value: []byte("v"), StoredAt: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	foreign := s.Prefix() + ns + "/e/%41"
	putRaw(t, client, foreign, store.AppendRecord(nil, store.Entry{Value: []byte("v"), StoredAt: time.Unix(1, 0)}, nil))
	t.Cleanup(func() {
		_, _ = client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(testBucket), Key: &foreign})
	})
	for info, err := range s.Entries(ctx, ns) {
		if err != nil || info.Key.ID != "A" {
			t.Errorf("Entries: %+v, %v; want only %q", info, err, "A")
		}
	}
	if n, err := s.DeleteBefore(ctx, ns, time.Now()); err != nil || n != 1 {
		t.Errorf("DeleteBefore = %d, %v; want 1 (A alone)", n, err)
	}
	if err := s.Clear(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if got := objectNames(t, client, s.Prefix()); len(got) != 1 || got[0] != foreign {
		t.Errorf("objects after DeleteBefore and Clear = %q; want the foreign %q alone", got, foreign)
	}
}

// TestSwapAbsentToAbsent checks Swap(nil -> nil) of a missing record: k has no entry,
// as old says, so it swaps (to nothing), and writes no object.
func TestSwapAbsentToAbsent(t *testing.T) {
	ctx := context.Background()
	s, client := newStore(t, nil)
	if ok, err := s.Swap(ctx, store.Key{Namespace: "swap", ID: "none"}, nil, nil); err != nil || !ok {
		t.Errorf("Swap(nil -> nil) of a missing record = %v, %v; want true", ok, err)
	}
	if got := objectNames(t, client, s.Prefix()); len(got) != 0 {
		t.Errorf("objects after Swap(nil -> nil) = %q; want none", got)
	}
}

// TestDeleteBeforeIsStrict checks that DeleteBefore(t) keeps an entry stored at t
// exactly: "before" is strict, to the nanosecond the header keeps.
func TestDeleteBeforeIsStrict(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, nil)
	at := time.Unix(1_700_000_000, 123456789)
	k := store.Key{Namespace: "strict", ID: "k"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: at}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteBefore(ctx, k.Namespace, at); err != nil || n != 0 {
		t.Errorf("DeleteBefore(the entry's own StoredAt) = %d, %v; want 0", n, err)
	}
	if n, err := s.DeleteBefore(ctx, k.Namespace, at.Add(time.Nanosecond)); err != nil || n != 1 {
		t.Errorf("DeleteBefore(a nanosecond after it) = %d, %v; want 1", n, err)
	}
}
