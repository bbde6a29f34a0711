package s3store_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store/s3store"
)

// workerURL names a fresh prefix of the shared bucket on srv as an s3:// URL.
func workerURL(srv *testserver.Server) string {
	u := url.URL{Scheme: "s3", User: url.UserPassword(srv.AccessKey, srv.SecretKey), Host: testBucket,
		Path: "/proctest-" + randHex(6)}
	q := url.Values{"endpoint": {srv.URL}, "region": {"us-east-1"}, "path_style": {"true"}}
	u.RawQuery = q.Encode()
	return u.String()
}

func TestStampedeAcrossProcesses(t *testing.T) {
	proctest.Stampede(t, workerURL(testserver.MinIO(t)), 4, 16)
}

func TestKilledHolderIsTakenOver(t *testing.T) {
	proctest.KillTakeover(t, workerURL(testserver.MinIO(t)))
}

func TestInvalidationThroughCachier(t *testing.T) {
	proctest.TagAcrossProcesses(t, workerURL(testserver.MinIO(t)))
	st, _ := newStore(t, nil)
	proctest.Invalidation(t, st)
}

func TestOutageThroughCachier(t *testing.T) {
	srv := testserver.Dedicated(t, testserver.KindMinIO)
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	st, err := s3store.New(client, "outage", &s3store.Options{Prefix: "outage/"})
	if err != nil {
		t.Fatal(err)
	}
	proctest.Outage(t, st, func() { srv.Stop(t) }, func() { srv.Start(t) })
}

// The function-level behaviour with the local tier on, in one process and across
// processes (S3 does not notify: the other process polls).
func TestLocalTierMatrix(t *testing.T) {
	proctest.LocalTierMatrix(t, workerURL(testserver.MinIO(t)), 200*time.Millisecond)
}
