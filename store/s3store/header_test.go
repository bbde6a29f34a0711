package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
)

// TestReadHeaderOfEmptiedObject checks that an object listed long enough for a
// header but empty by the time its header is read (S3 refuses the range of an empty
// object: InvalidRange) is a corrupt miss, which listings skip and DeleteBefore
// removes, not an error that ends the listing.
func TestReadHeaderOfEmptiedObject(t *testing.T) {
	srv := testserver.MinIO(t)
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	s, err := New(client, "cachier-test", &Options{Prefix: fmt.Sprintf("test-emptied-%d/", time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.ensureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	k := store.Key{Namespace: "ns", ID: "emptied"}
	name := s.objectName(k)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &name, Body: bytes.NewReader(nil)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Delete(context.Background(), k) })
	// As listed before it was emptied: an entry of ten bytes.
	_, err = s.readHeader(ctx, listed{name: name, id: k.ID, size: headerLen + 10})
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("readHeader of an object emptied since its listing: %v; want an error matching ErrCorrupt and store.ErrNotFound", err)
	}
}

// TestReadHeaderIgnoredRange checks that a server that ignores the byte range and
// sends the whole object still has its entries' headers read: the listing is right,
// and DeleteBefore does not delete them as corrupt.
func TestReadHeaderIgnoredRange(t *testing.T) {
	at := time.Unix(1_700_000_000, 5)
	body := store.AppendRecord(nil, store.Entry{Value: bytes.Repeat([]byte("v"), 1000), StoredAt: at}, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body) // 200 and every byte, whatever the Range
	}))
	defer srv.Close()
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("id", "secret", ""),
	})
	s, err := New(client, "bucket", nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.readHeader(context.Background(), listed{name: "cachier/ns/e/k", id: "k", size: int64(len(body))})
	if err != nil || info.Size != 1000 || !info.StoredAt.Equal(at) {
		t.Errorf("readHeader from a server that ignores the range = %+v, %v; want 1000 bytes stored at %v", info, err, at)
	}
}
