package s3store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/cachier-go/cachier/store"
)

const (
	defaultPrefix = "cachier/"
	// fanout is how many per-object requests Entries, Leases and DeleteBefore keep in
	// flight while they read the objects of one listing page.
	fanout = 16
	// metaStoredAt is user metadata written beside each entry, for people browsing the
	// bucket. The store itself reads StoredAt from the object's header.
	metaStoredAt = "cachier-stored-at"
)

// Options configure a Store. A nil *Options, like the zero Options, means defaults.
type Options struct {
	// Prefix is prepended to every object name, so that a bucket can hold other data
	// and several independent caches. It must be a relative path of at most 80 bytes
	// without empty, "." or ".." segments; a missing trailing '/' is added.
	// Default "cachier/".
	Prefix string
	// Logger receives warnings about objects the store skips (corrupt entries and
	// leases, names it did not write) and notes such as bucket creation.
	// Default: discard.
	Logger *slog.Logger
}

// Store keeps cachier entries and calculation leases in an S3 bucket. It is safe for
// concurrent use; see the package documentation for the object layout and costs.
type Store struct {
	client *s3.Client
	bucket string
	prefix string
	log    *slog.Logger

	bucketInit store.Init // checks or creates the bucket

	closeFn func() // set when the store owns its HTTP client (opened from a URL)
}

// The capabilities Store declares.
var _ interface {
	store.Driver
	store.Swapper
	store.Lister
	store.Pinger
} = (*Store)(nil)

// New returns a store that keeps its objects in bucket through client, which the
// caller configured (credentials, region, endpoint, retries) and keeps owning: Close
// does not close it. The bucket is created on first use if it does not exist. New does
// no I/O.
func New(client *s3.Client, bucket string, opts *Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("s3store: nil client")
	}
	if err := validateBucket(bucket); err != nil {
		return nil, err
	}
	o := store.OptionsOf(opts)
	prefix, err := validatePrefix(o.Prefix)
	if err != nil {
		return nil, err
	}
	s := &Store{
		client: client,
		bucket: bucket,
		prefix: prefix,
		log:    cmp.Or(o.Logger, slog.New(slog.DiscardHandler)),
	}
	return s, nil
}

// validateBucket rejects names that cannot be an S3 bucket (loosely: AWS's rules are
// stricter for new buckets, and the server has the last word).
func validateBucket(b string) error {
	if len(b) < 3 || len(b) > 255 {
		return fmt.Errorf("s3store: bucket name %q must be 3 to 255 characters", b)
	}
	for i := range len(b) {
		if c := b[i]; !store.NameByte(c, false) { // a letter, a digit, '-', '_' or '.'
			return fmt.Errorf("s3store: bucket name %q holds %q; use letters, digits, '.', '-'", b, c)
		}
	}
	return nil
}

// Bucket returns the bucket the store uses.
func (s *Store) Bucket() string { return s.bucket }

// Prefix returns the normalised object-name prefix (ending in '/').
func (s *Store) Prefix() string { return s.prefix }

// Close releases the HTTP connections of a store opened from a URL. It never closes a
// client passed to New, and is safe to call more than once (closing idle connections
// again closes none).
func (s *Store) Close() error {
	if s.closeFn != nil {
		s.closeFn()
	}
	return nil
}

// ensureBucket makes sure the bucket exists, once per store (again after an operation
// reported it missing).
func (s *Store) ensureBucket(ctx context.Context) error {
	return s.bucketInit.Do(ctx, func() error {
		_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
		if err == nil {
			return nil
		}
		if !isNotFound(err) {
			return fmt.Errorf("s3store: bucket %q: %w", s.bucket, err)
		}
		in := &s3.CreateBucketInput{Bucket: &s.bucket}
		if r := s.client.Options().Region; r != "" && r != "us-east-1" {
			in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
				LocationConstraint: types.BucketLocationConstraint(r),
			}
		}
		if _, err := s.client.CreateBucket(ctx, in); err != nil {
			// Another store may have created it meanwhile (BucketAlreadyOwnedByYou, or
			// BucketAlreadyExists on some servers): if it is usable now, all is well.
			if _, herr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); herr != nil {
				return fmt.Errorf("s3store: bucket %q does not exist and could not be created: %w", s.bucket, err)
			}
		} else {
			s.log.Info("s3store: created bucket", "bucket", s.bucket)
		}
		return nil
	})
}

// apiCode returns the S3 error code of err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus returns the HTTP status of a failed request, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// isNotFound reports a missing object (NoSuchKey from GET, a bare 404 from HEAD),
// or, for HeadBucket, a missing bucket.
func isNotFound(err error) bool {
	switch apiCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket":
		return false
	}
	return httpStatus(err) == http.StatusNotFound
}

// isConflict reports a failed precondition (If-Match, If-None-Match) or a concurrent
// conditional write that S3 refused.
func isConflict(err error) bool {
	switch apiCode(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	}
	switch httpStatus(err) {
	case http.StatusPreconditionFailed, http.StatusConflict:
		return true
	}
	return false
}

// fail wraps err from op on the object of k once, maps a missing object to
// store.ErrNotFound, and forgets the bucket if it vanished.
func (s *Store) fail(op string, k store.Key, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("s3store: %s %q: %w", op, k.String(), store.ErrNotFound)
	}
	s.noteBucketGone(err)
	return fmt.Errorf("s3store: %s %q: %w", op, k.String(), err)
}

func (s *Store) noteBucketGone(err error) {
	if apiCode(err) == "NoSuchBucket" {
		s.bucketInit.Reset()
	}
}

// Get returns the entry of k with one GetObject. A missing object is an error matching
// store.ErrNotFound; an object that fails its checksums matches both store.ErrNotFound
// and ErrCorrupt.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	e, _, err := s.get(ctx, k)
	return e, err
}

// get is Get that also returns the object's ETag, when there is an object (an empty
// or corrupt one included), for Swap.
func (s *Store) get(ctx context.Context, k store.Key) (store.Entry, *string, error) {
	if err := s.ensureBucket(ctx); err != nil {
		return store.Entry{}, nil, err
	}
	name := s.objectName(k)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &name})
	if err != nil {
		return store.Entry{}, nil, s.fail("get", k, err)
	}
	b, err := readBody(out, maxObjectSize)
	switch {
	case errors.Is(err, errTooBig):
		return store.Entry{}, out.ETag, corrupt(name, err.Error())
	case err != nil:
		return store.Entry{}, nil, s.fail("get", k, err)
	case bytes.Equal(b, tombstone): // a record deleted by Swap
		return store.Entry{}, out.ETag, store.NotFound(k)
	case len(b) == 0: // truncated: damage, not a deletion
		return store.Entry{}, out.ETag, corrupt(name, "empty object")
	}
	e, why := decodeEntry(b)
	if why != "" {
		return store.Entry{}, out.ETag, corrupt(name, why)
	}
	return e, out.ETag, nil
}

// tombstone is the body Swap writes to delete a record: one byte no entry starts with
// alone. An empty object is damage (a truncated write), a miss that is counted.
var tombstone = []byte{0}

// Swap implements store.Swapper with S3's conditional writes, which S3 applies
// atomically: creating is a PutObject with If-None-Match: *, swapping a PutObject with
// If-Match on the ETag of the object whose value was compared, so that of two callers
// swapping the same record (two processes taking over one dead holder's lease) exactly
// one succeeds. Deleting writes a one-byte tombstone with If-Match, because not every
// server honours If-Match on DELETE (MinIO does not); Get reads a tombstone as absent
// (and an empty or corrupt object as a corrupt miss), and Swap replaces any of them as
// it would create.
func (s *Store) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	cur, etag, err := s.get(ctx, k)
	present := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if present != (old != nil) || (present && !bytes.Equal(cur.Value, old)) {
		return false, nil
	}
	if next == nil && etag == nil {
		return true, nil // nothing there, nothing to delete
	}
	body := tombstone
	if next != nil {
		body = encodeEntry(*next)
	}
	name := s.objectName(k)
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: &name, Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))}
	if etag == nil {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = etag
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		if isConflict(err) || isNotFound(err) {
			return false, nil // changed since we read it
		}
		return false, s.fail("swap", k, err)
	}
	return true, nil
}

// errTooBig reports an object larger than anything this store writes at that name.
var errTooBig = errors.New("larger than this store ever writes there")

// readBody reads and closes a GetObject body of at most limit bytes. A longer body is
// an error matching errTooBig; other errors are the transport's.
func readBody(out *s3.GetObjectOutput, limit int64) ([]byte, error) {
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		if n > limit {
			return nil, fmt.Errorf("object of %d bytes: %w", n, errTooBig)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(out.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err == nil && int64(len(b)) > limit {
		return nil, errTooBig
	}
	return b, err
}

// readHead reads and closes at most the first n bytes of a GetObject body, however
// long the body is.
func readHead(out *s3.GetObjectOutput, n int) ([]byte, error) {
	defer out.Body.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(out.Body, b)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil // an entry without expiry has a shorter header
	}
	return b[:k], err
}

// Set writes e under k with one PutObject, which S3 applies atomically.
func (s *Store) Set(ctx context.Context, k store.Key, e store.Entry) error {
	if len(e.Value) > MaxValueSize {
		return fmt.Errorf("s3store: set %q: %w: %d bytes, S3 takes at most %d in one object",
			k.String(), store.ErrTooLarge, len(e.Value), MaxValueSize)
	}
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	name := s.objectName(k)
	body := encodeEntry(e)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &name,
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/octet-stream"),
		Metadata:      map[string]string{metaStoredAt: e.StoredAt.UTC().Format(time.RFC3339Nano)},
	})
	if err != nil {
		if apiCode(err) == "EntityTooLarge" {
			return fmt.Errorf("s3store: set %q: %w: %w", k.String(), store.ErrTooLarge, err)
		}
		return s.fail("set", k, err)
	}
	return nil
}

// Delete removes the entry of k. S3 reports success for a missing object.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	name := s.objectName(k)
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &name}); err != nil && !isNotFound(err) {
		return s.fail("delete", k, err)
	}
	return nil
}

// listed is one object of a listing page, with its decoded ID.
type listed struct {
	name string
	id   string
	size int64
	etag *string
}

// pages yields the entry objects of namespace, one listing page
// (up to 1000 objects) at a time, skipping names this store did not write.
func (s *Store) pages(ctx context.Context, namespace string) iter.Seq2[[]listed, error] {
	return func(yield func([]listed, error) bool) {
		if err := s.ensureBucket(ctx); err != nil {
			yield(nil, err)
			return
		}
		pfx := s.nsPrefix(namespace)
		p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &pfx})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				s.noteBucketGone(err)
				yield(nil, fmt.Errorf("s3store: list %q: %w", pfx, err))
				return
			}
			page := make([]listed, 0, len(out.Contents))
			for _, o := range out.Contents {
				name := aws.ToString(o.Key)
				id, err := parseName(strings.TrimPrefix(name, pfx), false)
				if err != nil {
					s.log.Warn("s3store: skipping an object this store did not write", "bucket", s.bucket, "name", name)
					continue
				}
				page = append(page, listed{name: name, id: id, size: aws.ToInt64(o.Size), etag: o.ETag})
			}
			if !yield(page, nil) {
				return
			}
		}
	}
}

// readHeader reads the fixed header of an entry object with one ranged GET. A missing
// object matches store.ErrNotFound; a bad header, ErrCorrupt.
func (s *Store) readHeader(ctx context.Context, o listed) (store.Info, error) {
	if o.size < headerLen {
		return store.Info{}, corrupt(o.name, fmt.Sprintf("%d bytes, shorter than the header", o.size))
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &s.bucket,
		Key:    &o.name,
		Range:  aws.String(fmt.Sprintf("bytes=0-%d", store.MaxRecordHeader-1)), // an entry without expiry answers with less
	}, noChecksumValidation)
	if err != nil {
		if isNotFound(err) {
			return store.Info{}, store.ErrNotFound
		}
		if apiCode(err) == "InvalidRange" { // emptied since the listing: no range of nothing is satisfiable
			return store.Info{}, corrupt(o.name, "shorter than the header")
		}
		return store.Info{}, fmt.Errorf("s3store: read header of %q: %w", o.name, err)
	}
	// A server may ignore the range and send the whole object (HTTP allows it): its
	// first bytes are the header all the same. Reading them alone keeps the listing
	// right there, where calling the object corrupt would have DeleteBefore delete it.
	b, err := readHead(out, store.MaxRecordHeader)
	if err != nil {
		return store.Info{}, fmt.Errorf("s3store: read header of %q: %w", o.name, err)
	}
	info, why := decodeHeader(b, o)
	if why != "" {
		return store.Info{}, corrupt(o.name, why)
	}
	return info, nil
}

// noChecksumValidation turns off response checksum validation for ranged reads: S3's
// full-object checksums cannot be checked on part of an object (the SDK would only log a
// warning), and the value in the object has its own checksum.
func noChecksumValidation(o *s3.Options) {
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

// What headers found of each object of a page.
const (
	headerRead    = iota
	headerGone    // deleted since the listing
	headerCorrupt // corrupt (logged), empty, or deleted by Swap: skipped, and DeleteBefore's
)

// headers reads the headers of a page's entries in parallel, into the entries' Info
// (without the namespace) and what it found of each; err is the first other error.
func (s *Store) headers(ctx context.Context, page []listed) ([]store.Info, []int, error) {
	infos, found, errs := make([]store.Info, len(page)), make([]int, len(page)), make([]error, len(page))
	store.Each(len(page), fanout, func(i int) {
		if page[i].size <= int64(len(tombstone)) {
			found[i] = headerCorrupt
			return
		}
		info, err := s.readHeader(ctx, page[i])
		switch {
		case err == nil:
			infos[i] = info
		case errors.Is(err, ErrCorrupt):
			s.log.Warn("s3store: skipping a corrupt entry", "bucket", s.bucket, "name", page[i].name, "err", err)
			found[i] = headerCorrupt
		case errors.Is(err, store.ErrNotFound):
			found[i] = headerGone
		default:
			errs[i] = err
		}
	})
	return infos, found, errors.Join(errs...)
}

// Clear deletes every entry of the namespace: one ListObjectsV2 and one DeleteObjects
// per 1000 entries.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	for page, err := range s.pages(ctx, namespace) {
		if err != nil {
			return err
		}
		if _, err := s.deleteMany(ctx, page, false); err != nil {
			return err
		}
	}
	return nil
}

// deleteMany deletes the objects with one DeleteObjects and returns how many S3
// reports deleted. With ifMatch, each deletion is conditional on the listed ETag, so an
// entry rewritten since the listing survives (on servers that honour it).
func (s *Store) deleteMany(ctx context.Context, objs []listed, ifMatch bool) (int, error) {
	if len(objs) == 0 {
		return 0, nil
	}
	ids := make([]types.ObjectIdentifier, len(objs))
	for i, o := range objs {
		ids[i] = types.ObjectIdentifier{Key: aws.String(o.name)}
		if ifMatch {
			ids[i].ETag = o.etag
		}
	}
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: &s.bucket,
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if err != nil {
		s.noteBucketGone(err)
		return 0, fmt.Errorf("s3store: delete %d objects: %w", len(objs), err)
	}
	n := len(objs)
	var errs []error
	for _, e := range out.Errors {
		n--
		switch aws.ToString(e.Code) {
		case "NoSuchKey", "PreconditionFailed", "ConditionalRequestConflict":
		default:
			errs = append(errs, fmt.Errorf("%s: %s", aws.ToString(e.Code), aws.ToString(e.Message)))
		}
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("s3store: delete %d objects: %d failed: %w", len(objs), len(errs), errors.Join(errs...))
	}
	return n, nil
}

// DeleteBefore deletes the entries of the namespace stored before t, and corrupt
// entries, and returns how many it deleted. Per 1000 entries it costs one
// ListObjectsV2, one ranged GET per entry (16 in flight) to read StoredAt, and one
// DeleteObjects. Each deletion is conditional on the ETag seen in the listing, so an
// entry rewritten meanwhile survives on servers that honour per-object ETags in
// DeleteObjects (AWS S3); elsewhere it may be deleted, which costs one recomputation.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	total := 0
	for page, err := range s.pages(ctx, namespace) {
		if err != nil {
			return total, err
		}
		infos, found, err := s.headers(ctx, page)
		if err != nil {
			return total, err
		}
		var old []listed
		for i, o := range page {
			if found[i] == headerCorrupt || found[i] == headerRead && infos[i].StoredAt.Before(t) {
				old = append(old, o)
			}
		}
		n, err := s.deleteMany(ctx, old, true)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Entries lists the entries of the namespace. Per 1000 entries it costs one
// ListObjectsV2 and one ranged GET per entry (16 in flight), because S3 listings carry
// neither user metadata nor the object's header, and StoredAt must be exact. Corrupt
// entries are skipped and logged.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		for page, err := range s.pages(ctx, namespace) {
			if err != nil {
				yield(store.Info{}, err)
				return
			}
			infos, found, err := s.headers(ctx, page)
			if err != nil {
				yield(store.Info{}, err)
				return
			}
			for i, info := range infos {
				if found[i] != headerRead {
					continue
				}
				info.Key.Namespace = namespace
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// Namespaces lists the namespaces that have entries or leases (expired leases not yet
// taken over or released included): one ListObjectsV2 with a delimiter per 1000
// namespaces, plus one for each namespace longer than the readable form allows.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	if err := s.ensureBucket(ctx); err != nil {
		return nil, err
	}
	var out []string
	err := s.commonPrefixes(ctx, s.prefix, func(seg string) error {
		if !strings.HasPrefix(seg, string(longMark)) {
			if ns, err := parseName(seg, true); err == nil {
				out = append(out, ns)
			}
			return nil
		}
		return s.commonPrefixes(ctx, s.prefix+seg+"/", func(seg2 string) error {
			if ns, err := parseName(seg+"/"+seg2, true); err == nil {
				out = append(out, ns)
			}
			return nil
		})
	})
	return out, err
}

// commonPrefixes calls f with the next path segment of every common prefix under pfx.
func (s *Store) commonPrefixes(ctx context.Context, pfx string, f func(seg string) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: &s.bucket, Prefix: &pfx, Delimiter: aws.String("/"),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			s.noteBucketGone(err)
			return fmt.Errorf("s3store: list %q: %w", pfx, err)
		}
		for _, cp := range out.CommonPrefixes {
			seg := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), pfx), "/")
			if err := f(seg); err != nil {
				return err
			}
		}
	}
	return nil
}
