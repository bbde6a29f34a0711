package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cachier-go/cachier/store"
)

// Version counters live beside the namespaces, in a directory whose name no namespace
// can have ('!' is never produced by the name encoding):
//
//	<prefix>!versions/<name>   the counter's value in decimal
const versionsDir = "!versions/"

// maxCounterSize bounds what Versions reads of a counter object.
const maxCounterSize = 64

var (
	_ store.Versioner       = (*Store)(nil)
	_ store.VersionedGetter = (*Store)(nil)
)

func (s *Store) counterName(name string) string {
	return string(appendName([]byte(s.prefix+versionsDir), name, false))
}

// Versions returns the counters' values with one GetObject each (16 in flight). A
// missing counter is 0. A counter object this store cannot read is an error matching
// ErrCorrupt (not store.ErrNotFound: reading it as 0 could revive invalidated entries);
// the next Bump repairs it.
func (s *Store) Versions(ctx context.Context, names []string) ([]uint64, error) {
	for _, n := range names {
		if err := store.ValidateCounter(n); err != nil {
			return nil, err
		}
	}
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	vals := make([]uint64, len(names))
	errs := make([]error, len(names))
	each(len(names), func(i int) { vals[i], errs[i] = s.readCounter(ctx, names[i]) })
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return vals, nil
}

func (s *Store) readCounter(ctx context.Context, name string) (uint64, error) {
	obj := s.counterName(name)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &obj})
	if err != nil {
		if isNotFound(err) {
			return 0, nil
		}
		s.noteBucketGone(err)
		return 0, fmt.Errorf("s3store: read counter %q: %w", name, err)
	}
	b, err := readBody(out, maxCounterSize)
	if err != nil && !errors.Is(err, errTooBig) {
		return 0, fmt.Errorf("s3store: read counter %q: %w", name, err)
	}
	v, perr := strconv.ParseUint(string(b), 10, 64)
	if err != nil || perr != nil || v == 0 {
		return 0, fmt.Errorf("s3store: counter %q in %q: %w: not a decimal number", name, obj, ErrCorrupt)
	}
	return v, nil
}

// Bump sets the counter to a fresh random non-zero value with one PutObject and
// returns it. Concurrent bumps overwrite each other; each still leaves a value no entry
// has recorded.
func (s *Store) Bump(ctx context.Context, name string) (uint64, error) {
	if err := store.ValidateCounter(name); err != nil {
		return 0, err
	}
	if err := s.prepare(ctx); err != nil {
		return 0, err
	}
	v := store.NewVersion()
	obj := s.counterName(name)
	body := strconv.AppendUint(nil, v, 10)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &obj,
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("text/plain"),
	})
	if err != nil {
		s.noteBucketGone(err)
		return 0, fmt.Errorf("s3store: bump counter %q: %w", name, err)
	}
	return v, nil
}

// GetVersioned is Get and Versions together, their requests issued concurrently, so a
// hit on a tagged entry costs one round trip of latency (but one request per counter
// more than Get).
func (s *Store) GetVersioned(ctx context.Context, k store.Key, names []string) (store.Entry, []uint64, error) {
	if len(names) == 0 {
		e, err := s.Get(ctx, k)
		return e, nil, err
	}
	var (
		wg   sync.WaitGroup
		vals []uint64
		verr error
	)
	wg.Go(func() { vals, verr = s.Versions(ctx, names) })
	e, err := s.Get(ctx, k)
	wg.Wait()
	if err != nil {
		return store.Entry{}, nil, err
	}
	if verr != nil {
		return store.Entry{}, nil, verr
	}
	return e, vals, nil
}
