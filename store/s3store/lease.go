package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cachier-go/cachier/store"
)

// maxAcquireRounds bounds how often Acquire retries after losing a race to a lease that
// then vanished (released or taken over and released). Each round is a real change by
// another process, so running out means heavy contention, reported as an error.
const maxAcquireRounds = 16

// releaseMargin is how much life a lease must have left for Release to delete it
// outright. A lease closer to its expiry (or past it) is released by overwriting it with
// an empty "released" object conditional on its ETag instead, because a contender may
// take it over at any moment and not every server honours If-Match on DELETE (MinIO
// does not): an unconditional delete could remove the new holder's lease.
const releaseMargin = 5 * time.Second

// leaseState is a lease object as read from S3.
type leaseState struct {
	owner    store.Owner
	expires  time.Time
	etag     *string
	released bool // an empty object: a released lease, free to take
}

// readLease reads the lease object name with one GetObject. A missing object matches
// store.ErrNotFound. An unreadable one matches ErrCorrupt (and store.ErrNotFound), and
// its ETag is still returned, so that Acquire can take it over.
func (s *Store) readLease(ctx context.Context, name string) (leaseState, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &name})
	if err != nil {
		if isNotFound(err) {
			return leaseState{}, store.ErrNotFound
		}
		s.noteBucketGone(err)
		return leaseState{}, err
	}
	st := leaseState{etag: out.ETag}
	b, err := readBody(out, maxLeaseSize)
	if errors.Is(err, errTooBig) {
		return st, corrupt(name, err.Error())
	}
	if err != nil {
		return st, err
	}
	if len(b) == 0 {
		st.released = true
		return st, nil
	}
	o, exp, why := decodeLease(b)
	if why != "" {
		return st, corrupt(name, why)
	}
	st.owner, st.expires = o, exp
	return st, nil
}

// putLease writes the lease object name with exactly one of ifNoneMatch ("*") or
// ifMatch (an ETag) as its condition.
func (s *Store) putLease(ctx context.Context, name string, o store.Owner, expires time.Time, ifMatch *string) error {
	body := encodeLease(o, expires)
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &name,
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	}
	if ifMatch == nil {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = ifMatch
	}
	_, err := s.client.PutObject(ctx, in)
	if err != nil {
		s.noteBucketGone(err)
	}
	return err
}

// putReleased replaces the lease object, if its ETag is still etag, with an empty one.
func (s *Store) putReleased(ctx context.Context, name string, etag *string) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &name,
		Body:          bytes.NewReader(nil),
		ContentLength: aws.Int64(0),
		IfMatch:       etag,
	})
	if err != nil {
		s.noteBucketGone(err)
	}
	return err
}

func validateLeaseArgs(k store.Key, o store.Owner, ttl time.Duration) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if o.Token == "" || !utf8.ValidString(o.Token) || !utf8.ValidString(o.Host) {
		return fmt.Errorf("s3store: lease on %q: owner token must be non-empty UTF-8, and host UTF-8", k.String())
	}
	if ttl <= 0 {
		return fmt.Errorf("s3store: lease on %q: ttl %v is not positive", k.String(), ttl)
	}
	return nil
}

// Acquire takes the lease on k with a PutObject conditional on If-None-Match: *, which
// S3 applies atomically. If a lease object exists, Acquire reads it: a lease held by
// another owner until after now is reported as a *store.HeldError naming the holder;
// an expired or unreadable one, or one presenting o's own token, is taken over with a
// PutObject conditional on If-Match with the ETag just read, so that of several
// contenders exactly one succeeds.
//
// Expiry is judged by this store's clock (Options.Clock): processes sharing a bucket
// must have clocks that agree to well within the lease TTL, or a fast clock takes over
// leases early.
func (s *Store) Acquire(ctx context.Context, k store.Key, o store.Owner, ttl time.Duration) (store.Lease, error) {
	if err := validateLeaseArgs(k, o, ttl); err != nil {
		return store.Lease{}, err
	}
	if err := s.prepare(ctx); err != nil {
		return store.Lease{}, err
	}
	name := s.objectName(k, leaseDir)
	for range maxAcquireRounds {
		exp := s.now().Add(ttl)
		err := s.putLease(ctx, name, o, exp, nil)
		if err == nil {
			return store.Lease{Key: k, Owner: o, ExpiresAt: exp}, nil
		}
		if !isConflict(err) {
			return store.Lease{}, fmt.Errorf("s3store: acquire %q: %w", k.String(), err)
		}
		cur, err := s.readLease(ctx, name)
		switch {
		case errors.Is(err, ErrCorrupt):
			s.log.Warn("s3store: taking over a corrupt lease", "bucket", s.bucket, "name", name, "err", err)
		case errors.Is(err, store.ErrNotFound):
			continue // released meanwhile: try to create it again
		case err != nil:
			return store.Lease{}, fmt.Errorf("s3store: acquire %q: %w", k.String(), err)
		case cur.released:
			// free: take it over below
		case cur.owner.Token != o.Token && cur.expires.After(s.now()):
			return store.Lease{}, &store.HeldError{Holder: store.Lease{Key: k, Owner: cur.owner, ExpiresAt: cur.expires}}
		}
		exp = s.now().Add(ttl)
		err = s.putLease(ctx, name, o, exp, cur.etag)
		switch {
		case err == nil:
			return store.Lease{Key: k, Owner: o, ExpiresAt: exp}, nil
		case isConflict(err) || isNotFound(err):
			continue // another contender changed it first: look again
		default:
			return store.Lease{}, fmt.Errorf("s3store: acquire %q: %w", k.String(), err)
		}
	}
	return store.Lease{}, fmt.Errorf("s3store: acquire %q: the lease changed hands %d times while acquiring; giving up", k.String(), maxAcquireRounds)
}

// Renew extends l to ttl from now: it reads the lease object, checks that it still
// carries l's token and has not expired, and rewrites it with a PutObject conditional
// on the ETag it read, so a takeover in between makes Renew fail with an error
// matching store.ErrLeaseLost.
func (s *Store) Renew(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error) {
	if err := validateLeaseArgs(l.Key, l.Owner, ttl); err != nil {
		return store.Lease{}, err
	}
	if err := s.prepare(ctx); err != nil {
		return store.Lease{}, err
	}
	name := s.objectName(l.Key, leaseDir)
	lost := func(why string) error {
		return fmt.Errorf("s3store: renew %q: %w: %s", l.Key.String(), store.ErrLeaseLost, why)
	}
	cur, err := s.readLease(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound): // also corrupt
		return store.Lease{}, lost("no lease object")
	case err != nil:
		return store.Lease{}, fmt.Errorf("s3store: renew %q: %w", l.Key.String(), err)
	case cur.released:
		return store.Lease{}, lost("released")
	case cur.owner.Token != l.Owner.Token:
		return store.Lease{}, lost("held by " + cur.owner.String())
	case !cur.expires.After(s.now()):
		return store.Lease{}, lost("expired")
	}
	exp := s.now().Add(ttl)
	err = s.putLease(ctx, name, l.Owner, exp, cur.etag)
	switch {
	case err == nil:
		return store.Lease{Key: l.Key, Owner: l.Owner, ExpiresAt: exp}, nil
	case isConflict(err) || isNotFound(err):
		return store.Lease{}, lost("changed while renewing")
	default:
		return store.Lease{}, fmt.Errorf("s3store: renew %q: %w", l.Key.String(), err)
	}
}

// Release gives up the lease if the lease object still carries l's token: it reads the
// object, then deletes it, with If-Match on the ETag it read for servers that honour
// that on DELETE (AWS S3; MinIO ignores it). The delete is safe without the condition
// because nobody may take over a lease before it expires, and Release deletes only
// leases with more than 5 seconds left (on clocks in sync, as leases assume anyway).
// A lease closer to expiry is instead overwritten, conditional on its ETag, with an
// empty object that every store treats as free; ReleaseAll removes such objects.
func (s *Store) Release(ctx context.Context, l store.Lease) error {
	if err := l.Key.Validate(); err != nil {
		return err
	}
	if err := s.prepare(ctx); err != nil {
		return err
	}
	name := s.objectName(l.Key, leaseDir)
	cur, err := s.readLease(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound): // also corrupt: not ours to delete
		return nil
	case err != nil:
		return fmt.Errorf("s3store: release %q: %w", l.Key.String(), err)
	case cur.released || cur.owner.Token != l.Owner.Token:
		return nil
	}
	if cur.expires.Sub(s.now()) < releaseMargin {
		err := s.putReleased(ctx, name, cur.etag)
		if err != nil && !isConflict(err) && !isNotFound(err) {
			return fmt.Errorf("s3store: release %q: %w", l.Key.String(), err)
		}
		return nil
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &name, IfMatch: cur.etag})
	if err != nil && !isConflict(err) && !isNotFound(err) {
		s.noteBucketGone(err)
		return fmt.Errorf("s3store: release %q: %w", l.Key.String(), err)
	}
	return nil
}

// Leases lists the unexpired leases of the namespace: one ListObjectsV2 per 1000
// lease objects and one GetObject per lease object (16 in flight).
func (s *Store) Leases(ctx context.Context, namespace string) iter.Seq2[store.Lease, error] {
	return func(yield func(store.Lease, error) bool) {
		for page, err := range s.pages(ctx, namespace, leaseDir) {
			if err != nil {
				yield(store.Lease{}, err)
				return
			}
			states := make([]leaseState, len(page))
			errs := make([]error, len(page))
			each(len(page), func(i int) {
				if page[i].size == 0 {
					states[i].released = true // no need to read an empty object
					return
				}
				states[i], errs[i] = s.readLease(ctx, page[i].name)
			})
			now := s.now()
			for i, o := range page {
				switch err := errs[i]; {
				case errors.Is(err, ErrCorrupt):
					s.log.Warn("s3store: skipping a corrupt lease", "bucket", s.bucket, "name", o.name, "err", err)
					continue
				case errors.Is(err, store.ErrNotFound):
					continue
				case err != nil:
					yield(store.Lease{}, fmt.Errorf("s3store: read lease %q: %w", o.name, err))
					return
				}
				if states[i].released || !states[i].expires.After(now) {
					continue
				}
				l := store.Lease{Key: store.Key{Namespace: namespace, ID: o.id}, Owner: states[i].owner, ExpiresAt: states[i].expires}
				if !yield(l, nil) {
					return
				}
			}
		}
	}
}

// ReleaseAll deletes every lease object of the namespace, whoever holds it and whether
// or not it expired, and returns how many it deleted (not counting the empty objects
// of released leases, which it deletes too): one ListObjectsV2 and one DeleteObjects
// per 1000 lease objects.
func (s *Store) ReleaseAll(ctx context.Context, namespace string) (int, error) {
	total := 0
	for page, err := range s.pages(ctx, namespace, leaseDir) {
		if err != nil {
			return total, err
		}
		n, err := s.deleteMany(ctx, page, false)
		for _, o := range page {
			if o.size == 0 {
				n-- // a released lease
			}
		}
		total += max(n, 0)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
