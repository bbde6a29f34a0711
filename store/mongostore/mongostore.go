package mongostore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"

	"github.com/cachier-go/cachier/store"
)

// ErrCorrupt reports a document that cannot be read as an entry or lease: a field is
// missing or of the wrong type, or it names another key. It is store.ErrCorrupt; Get
// wraps it together with store.ErrNotFound, so callers treat it as a miss.
var ErrCorrupt = store.ErrCorrupt

// MaxDocumentSize is MongoDB's limit on one document. Set refuses values that would not
// fit, with store.ErrTooLarge, before sending them.
const MaxDocumentSize = 16 << 20

// docOverhead bounds the bytes of an entry document besides its value and key strings.
const docOverhead = 256

// MaxCollectionNameLen is the longest collection name New accepts.
const MaxCollectionNameLen = 120

// takeoverRetries bounds Acquire's insert / read / take-over loop under contention.
const takeoverRetries = 8

// Field names.
const (
	fID        = "_id"
	fNS        = "ns"
	fKeyID     = "id"
	fStoredAt  = "stored_at"
	fSize      = "size"
	fValue     = "value"
	fHost      = "host"
	fPID       = "pid"
	fToken     = "token"
	fExpiresAt = "expires_at"
	fClaimNS   = "claim_ns"
	// fExpireAt is an entry's ExpiresAt, a BSON date (milliseconds) so that the TTL
	// index on it lets the server remove the entry; absent when it never expires.
	fExpireAt = "expire_at"
)

// Options configure a Store. The zero value (or nil) uses the defaults.
type Options struct {
	// LeaseCollection names the collection of calculation leases, in the entry
	// collection's database. Default: the entry collection's name + "_leases".
	LeaseCollection string
	// VersionCollection names the collection of version counters (store.Versioner),
	// in the entry collection's database. Default: the entry collection's name +
	// "_versions".
	VersionCollection string
	// Clock returns the current time, for lease expiry. Default time.Now. Hosts that
	// share a store are assumed to agree on the time to well within a lease's TTL.
	Clock func() time.Time
}

// Store is a store.Store on a MongoDB collection. It is safe for concurrent use.
type Store struct {
	coll, leases, versions *mongo.Collection
	now                    func() time.Time
	client                 *mongo.Client // set when the store owns its client (opened from a URL)

	indexed atomic.Bool
	noTTL   atomic.Bool // the server refused the TTL index
	indexMu sync.Mutex
}

var _ store.Store = (*Store)(nil)

// New returns a store keeping entries in coll and leases in a sibling collection.
// Collections and indexes are created on first use. The client behind coll stays the
// caller's: Close does not disconnect it.
func New(coll *mongo.Collection, opts *Options) (*Store, error) {
	if coll == nil {
		return nil, errors.New("mongostore: nil collection")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := ValidateCollectionName(coll.Name()); err != nil {
		return nil, err
	}
	if o.LeaseCollection == "" {
		o.LeaseCollection = coll.Name() + "_leases"
	}
	if o.VersionCollection == "" {
		o.VersionCollection = coll.Name() + "_versions"
	}
	for _, name := range []string{o.LeaseCollection, o.VersionCollection} {
		if err := ValidateCollectionName(name); err != nil {
			return nil, err
		}
	}
	switch {
	case o.LeaseCollection == coll.Name():
		return nil, fmt.Errorf("mongostore: lease collection %q is the entry collection", o.LeaseCollection)
	case o.VersionCollection == coll.Name():
		return nil, fmt.Errorf("mongostore: version collection %q is the entry collection", o.VersionCollection)
	case o.VersionCollection == o.LeaseCollection:
		return nil, fmt.Errorf("mongostore: version collection %q is the lease collection", o.VersionCollection)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Store{
		coll:     coll,
		leases:   coll.Database().Collection(o.LeaseCollection),
		versions: coll.Database().Collection(o.VersionCollection),
		now:      o.Clock,
	}, nil
}

// ValidateCollectionName accepts names of ASCII letters, digits, '_', '-' and '.', at
// most MaxCollectionNameLen bytes, not starting with "system." or a dot.
func ValidateCollectionName(name string) error {
	switch {
	case name == "":
		return errors.New("mongostore: empty collection name")
	case len(name) > MaxCollectionNameLen:
		return fmt.Errorf("mongostore: collection name of %d bytes is longer than %d", len(name), MaxCollectionNameLen)
	case strings.HasPrefix(name, "system.") || name[0] == '.' || name[len(name)-1] == '.':
		return fmt.Errorf("mongostore: collection name %q is reserved or malformed", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("mongostore: collection name %q may hold only letters, digits, '_', '-' and '.'", name)
		}
	}
	return nil
}

// docID is the _id of k's entry and lease documents.
func docID(k store.Key) string {
	return strconv.Itoa(len(k.Namespace)) + ":" + k.Namespace + ":" + k.ID
}

// Times are int64 Unix nanoseconds; the zero time, which has none, is MinInt64, and
// times beyond int64 nanoseconds (before 1678, after 2262) are clamped.
var (
	minNanoTime = time.Unix(0, math.MinInt64+1)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return math.MinInt64
	case t.Before(minNanoTime):
		return math.MinInt64 + 1
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// ensureIndexes creates the indexes once per Store; a failure is retried on the next
// write. Creating an index that exists with the same keys is not an error, so many
// processes may race here.
func (s *Store) ensureIndexes(ctx context.Context) error {
	if s.indexed.Load() {
		return nil
	}
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	if s.indexed.Load() {
		return nil
	}
	if _, err := s.coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: fNS, Value: 1}, {Key: fStoredAt, Value: 1}},
		Options: options.Index().SetName("cachier_ns_stored_at"),
	}); err != nil {
		return err
	}
	if _, err := s.leases.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: fNS, Value: 1}, {Key: fExpiresAt, Value: 1}},
		Options: options.Index().SetName("cachier_ns_expires_at"),
	}); err != nil {
		return err
	}
	// The TTL index: the server deletes an entry once its expire_at has passed (its
	// monitor runs about once a minute; reads past it are misses before that). A
	// server without TTL indexes (FerretDB) still works: expired entries are misses
	// and cleanup (DeleteExpired) removes them.
	if _, err := s.coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: fExpireAt, Value: 1}},
		Options: options.Index().SetName("cachier_expire_at").SetExpireAfterSeconds(0),
	}); err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.noTTL.Store(true)
		slog.Warn("mongostore: the server cannot make a TTL index, so expired entries stay until cleanup removes them",
			"collection", s.coll.Name(), "err", err)
	}
	s.indexed.Store(true)
	return nil
}

func notFound(k store.Key) error { return fmt.Errorf("%w: %s", store.ErrNotFound, k) }

func corrupt(k store.Key, format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s: %s", store.ErrNotFound, ErrCorrupt, k, fmt.Sprintf(format, args...))
}

// Get returns the entry of k with one FindOne by _id.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	if err := k.Validate(); err != nil {
		return store.Entry{}, err
	}
	raw, err := s.coll.FindOne(ctx, bson.D{{Key: fID, Value: docID(k)}}).Raw()
	if err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return store.Entry{}, notFound(k)
		}
		return store.Entry{}, err
	}
	return decodeEntry(k, raw)
}

func decodeEntry(k store.Key, raw bson.Raw) (store.Entry, error) {
	str := func(name string) (string, bool) {
		v, err := raw.LookupErr(name)
		if err != nil {
			return "", false
		}
		return v.StringValueOK()
	}
	if ns, ok := str(fNS); !ok || ns != k.Namespace {
		return store.Entry{}, corrupt(k, "document has no namespace %q", k.Namespace)
	}
	if id, ok := str(fKeyID); !ok || id != k.ID {
		return store.Entry{}, corrupt(k, "document has no id %q", k.ID)
	}
	v, err := raw.LookupErr(fStoredAt)
	if err != nil {
		return store.Entry{}, corrupt(k, "no %s: %v", fStoredAt, err)
	}
	at, ok := v.Int64OK()
	if !ok {
		return store.Entry{}, corrupt(k, "%s is a %s, not an int64", fStoredAt, v.Type)
	}
	v, err = raw.LookupErr(fValue)
	if err != nil {
		return store.Entry{}, corrupt(k, "no %s: %v", fValue, err)
	}
	sub, data, ok := v.BinaryOK()
	if !ok || sub != bson.TypeBinaryGeneric {
		return store.Entry{}, corrupt(k, "%s is a %s, not generic binary", fValue, v.Type)
	}
	var exp time.Time
	if v, err := raw.LookupErr(fExpireAt); err == nil {
		dt, ok := v.DateTimeOK()
		if !ok {
			return store.Entry{}, corrupt(k, "%s is a %s, not a date", fExpireAt, v.Type)
		}
		exp = time.UnixMilli(dt)
	}
	// The driver may reuse the reply's buffer: the caller gets its own copy.
	return store.Entry{Value: append([]byte{}, data...), StoredAt: fromNanos(at), ExpiresAt: exp}, nil
}

// Set stores e under k with one ReplaceOne (upsert).
func (s *Store) Set(ctx context.Context, k store.Key, e store.Entry) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if n := len(e.Value) + 2*len(k.Namespace) + 2*len(k.ID) + docOverhead; n > MaxDocumentSize {
		return fmt.Errorf("%w: %s: value of %d bytes does not fit a %d-byte document", store.ErrTooLarge, k, len(e.Value), MaxDocumentSize)
	}
	if err := s.ensureIndexes(ctx); err != nil {
		return err
	}
	id := docID(k)
	value := e.Value
	if value == nil {
		value = []byte{} // a nil slice would be stored as BSON null
	}
	doc := bson.D{
		{Key: fID, Value: id},
		{Key: fNS, Value: k.Namespace},
		{Key: fKeyID, Value: k.ID},
		{Key: fStoredAt, Value: nanos(e.StoredAt)},
		{Key: fSize, Value: int64(len(e.Value))},
		{Key: fValue, Value: bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: value}},
	}
	if !e.ExpiresAt.IsZero() {
		doc = append(doc, bson.E{Key: fExpireAt, Value: bson.DateTime(e.ExpiresAt.UnixMilli())})
	}
	_, err := s.coll.ReplaceOne(ctx, bson.D{{Key: fID, Value: id}}, doc, options.Replace().SetUpsert(true))
	if err != nil && isTooLarge(err) {
		return fmt.Errorf("%w: %s: %w", store.ErrTooLarge, k, err)
	}
	return err
}

func isTooLarge(err error) bool {
	if errors.Is(err, driver.ErrDocumentTooLarge) {
		return true
	}
	var se mongo.ServerError
	return errors.As(err, &se) && (se.HasErrorCode(10334) || se.HasErrorCode(17419) || se.HasErrorCode(17420) ||
		se.HasErrorMessage("too large"))
}

// Delete removes the entry of k.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := s.coll.DeleteOne(ctx, bson.D{{Key: fID, Value: docID(k)}})
	return err
}

// Clear removes every entry of the namespace with one DeleteMany.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	if err := store.ValidateNamespace(namespace); err != nil {
		return err
	}
	_, err := s.coll.DeleteMany(ctx, bson.D{{Key: fNS, Value: namespace}})
	return err
}

// DeleteBefore removes the entries of the namespace stored before t.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	if err := store.ValidateNamespace(namespace); err != nil {
		return 0, err
	}
	res, err := s.coll.DeleteMany(ctx, bson.D{
		{Key: fNS, Value: namespace},
		{Key: fStoredAt, Value: bson.D{{Key: "$lt", Value: nanos(t)}}},
	})
	if err != nil {
		return 0, err
	}
	return int(res.DeletedCount), nil
}

// Entries lists the entries of the namespace, without their values. A document that
// cannot be read yields an error matching ErrCorrupt, and the listing goes on.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(store.Info{}, err)
			return
		}
		if err := store.ValidateNamespace(namespace); err != nil {
			yield(store.Info{}, err)
			return
		}
		cur, err := s.coll.Find(ctx, bson.D{{Key: fNS, Value: namespace}},
			options.Find().SetProjection(bson.D{{Key: fKeyID, Value: 1}, {Key: fStoredAt, Value: 1}, {Key: fSize, Value: 1}, {Key: fExpireAt, Value: 1}}))
		if err != nil {
			yield(store.Info{}, err)
			return
		}
		defer cur.Close(context.WithoutCancel(ctx))
		for cur.Next(ctx) {
			var d struct {
				ID       string    `bson:"id"`
				StoredAt int64     `bson:"stored_at"`
				Size     int64     `bson:"size"`
				ExpireAt time.Time `bson:"expire_at"`
			}
			var info store.Info
			if err := cur.Decode(&d); err != nil {
				err = fmt.Errorf("%w: entry %v of %q: %w", ErrCorrupt, cur.Current.Lookup(fID), namespace, err)
				if !yield(info, err) {
					return
				}
				continue
			}
			info = store.Info{Key: store.Key{Namespace: namespace, ID: d.ID}, Size: d.Size, StoredAt: fromNanos(d.StoredAt)}
			if !d.ExpireAt.IsZero() && d.ExpireAt.Unix() != 0 {
				info.ExpiresAt = d.ExpireAt
			}
			if !yield(info, nil) {
				return
			}
		}
		if err := cur.Err(); err != nil {
			yield(store.Info{}, err)
		}
	}
}

// Namespaces lists the namespaces that have entries or leases.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	var all []string
	for _, c := range []*mongo.Collection{s.coll, s.leases} {
		var nss []string
		filter := bson.D{{Key: fNS, Value: bson.D{{Key: "$type", Value: "string"}}}}
		if err := c.Distinct(ctx, fNS, filter).Decode(&nss); err != nil {
			return nil, err
		}
		all = append(all, nss...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// leaseDoc is a lease document.
type leaseDoc struct {
	ID        string `bson:"_id"`
	NS        string `bson:"ns"`
	KeyID     string `bson:"id"`
	Host      string `bson:"host"`
	PID       int64  `bson:"pid"`
	Token     string `bson:"token"`
	ExpiresAt int64  `bson:"expires_at"`
}

func (d leaseDoc) lease() store.Lease {
	return store.Lease{
		Key:       store.Key{Namespace: d.NS, ID: d.KeyID},
		Owner:     store.Owner{Host: d.Host, PID: int(d.PID), Token: d.Token},
		ExpiresAt: fromNanos(d.ExpiresAt),
	}
}

func validateLease(k store.Key, o store.Owner, ttl time.Duration) error {
	if err := k.Validate(); err != nil {
		return err
	}
	switch {
	case ttl <= 0:
		return fmt.Errorf("mongostore: lease ttl %s is not positive", ttl)
	case o.Token == "":
		return errors.New("mongostore: lease owner has an empty token")
	}
	return nil
}

// Acquire takes the lease on k with an InsertOne, or takes over an expired lease with
// an UpdateOne filtered on the expired holder's token and expiry.
func (s *Store) Acquire(ctx context.Context, k store.Key, o store.Owner, ttl time.Duration) (store.Lease, error) {
	if err := validateLease(k, o, ttl); err != nil {
		return store.Lease{}, err
	}
	if err := s.ensureIndexes(ctx); err != nil {
		return store.Lease{}, err
	}
	id := docID(k)
	for range takeoverRetries {
		now := s.now()
		d := leaseDoc{ID: id, NS: k.Namespace, KeyID: k.ID, Host: o.Host, PID: int64(o.PID), Token: o.Token, ExpiresAt: nanos(now.Add(ttl))}
		_, err := s.leases.InsertOne(ctx, d)
		if err == nil {
			return d.lease(), nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return store.Lease{}, err
		}
		raw, err := s.leases.FindOne(ctx, bson.D{{Key: fID, Value: id}}).Raw()
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			continue // released meanwhile: insert again
		case err != nil:
			return store.Lease{}, err
		}
		holder, live, filter := judgeLease(raw, id, nanos(now))
		if live {
			holder.Key = k
			return store.Lease{}, &store.HeldError{Holder: holder}
		}
		// Expired (or unreadable): take it over, unless someone renewed, released or
		// took it first. The filter matches exactly the document we judged; the claim
		// makes sure only one caller tries, even on servers whose filtered updates are
		// not atomic.
		claim, err := s.claim(ctx, k, raw, now)
		if err != nil {
			return store.Lease{}, err
		}
		res, err := s.leases.ReplaceOne(ctx, filter, d)
		// The claim can go now: the version it claims is gone, or was never there.
		_, derr := s.leases.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: fID, Value: claim}})
		if err != nil {
			return store.Lease{}, err
		}
		if derr != nil {
			return store.Lease{}, derr
		}
		if res.MatchedCount == 1 {
			return d.lease(), nil
		}
	}
	return store.Lease{}, &store.HeldError{Holder: store.Lease{Key: k}}
}

// claimTTL is how long a takeover claim blocks other takers; only a taker that dies
// between claiming and replacing leaves one behind.
const claimTTL = 30 * time.Second

// maxClaims bounds the chain of claims on one lease version (each left by a taker
// that died).
const maxClaims = 8

// claim inserts the one takeover claim on the lease version raw, so that of all the
// callers who found that version expired, exactly one replaces it: the unique _id
// decides, which is atomic on every server, unlike a filtered update on FerretDB v1.
// A claim left by a taker that died expires after claimTTL, and the next claim in the
// chain (another unique _id) is taken instead of deleting it. Claims carry no "ns",
// so they are never listed as leases; ReleaseAll removes any left behind.
// It returns the claim's _id, or a *store.HeldError if another caller holds it.
func (s *Store) claim(ctx context.Context, k store.Key, raw bson.Raw, now time.Time) (string, error) {
	sum := sha256.Sum256(raw)
	base := "claim:" + hex.EncodeToString(sum[:16]) + ":"
	for n := range maxClaims {
		id := base + strconv.Itoa(n)
		_, err := s.leases.InsertOne(ctx, bson.D{
			{Key: fID, Value: id},
			{Key: fClaimNS, Value: k.Namespace},
			{Key: fExpiresAt, Value: nanos(now.Add(claimTTL))},
		})
		if err == nil {
			return id, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return "", err
		}
		var c struct {
			ExpiresAt int64 `bson:"expires_at"`
		}
		err = s.leases.FindOne(ctx, bson.D{{Key: fID, Value: id}}).Decode(&c)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			// Its taker finished (and the version it claimed is gone): so is ours.
			return "", &store.HeldError{Holder: store.Lease{Key: k}}
		case err != nil:
			return "", err
		case c.ExpiresAt > nanos(now):
			return "", &store.HeldError{Holder: store.Lease{Key: k}} // being taken over
		}
	}
	return "", &store.HeldError{Holder: store.Lease{Key: k}}
}

// judgeLease reads the lease document raw leniently: whether it is live at now, its
// holder, and a filter that matches exactly this version of it (its _id, token and
// expiry as found, or their absence), for a conditional takeover.
func judgeLease(raw bson.Raw, id string, now int64) (holder store.Lease, live bool, filter bson.D) {
	filter = bson.D{{Key: fID, Value: id}}
	exact := func(name string) bson.RawValue {
		v, err := raw.LookupErr(name)
		if err != nil {
			filter = append(filter, bson.E{Key: name, Value: bson.D{{Key: "$exists", Value: false}}})
			return bson.RawValue{}
		}
		filter = append(filter, bson.E{Key: name, Value: v})
		return v
	}
	token, tokOK := exact(fToken).StringValueOK()
	exp, expOK := exact(fExpiresAt).Int64OK()
	str := func(name string) string {
		v, _ := raw.Lookup(name).StringValueOK()
		return v
	}
	pid, _ := raw.Lookup(fPID).Int64OK()
	holder = store.Lease{
		Owner:     store.Owner{Host: str(fHost), PID: int(pid), Token: token},
		ExpiresAt: fromNanos(exp),
	}
	return holder, tokOK && token != "" && expOK && exp > now, filter
}

func lost(l store.Lease) error {
	return fmt.Errorf("%w: %s by %s", store.ErrLeaseLost, l.Key, l.Owner)
}

// Renew extends l with one UpdateOne filtered on its token and an unexpired expiry.
func (s *Store) Renew(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error) {
	if err := validateLease(l.Key, l.Owner, ttl); err != nil {
		return store.Lease{}, err
	}
	now := s.now()
	exp := now.Add(ttl)
	res, err := s.leases.UpdateOne(ctx,
		bson.D{
			{Key: fID, Value: docID(l.Key)},
			{Key: fToken, Value: l.Owner.Token},
			{Key: fExpiresAt, Value: bson.D{{Key: "$gt", Value: nanos(now)}}},
		},
		bson.D{{Key: "$set", Value: bson.D{{Key: fExpiresAt, Value: nanos(exp)}}}})
	if err != nil {
		return store.Lease{}, err
	}
	if res.MatchedCount == 0 {
		return store.Lease{}, lost(l)
	}
	return store.Lease{Key: l.Key, Owner: l.Owner, ExpiresAt: fromNanos(nanos(exp))}, nil
}

// Release gives l up with one DeleteOne filtered on its token.
func (s *Store) Release(ctx context.Context, l store.Lease) error {
	if err := l.Key.Validate(); err != nil {
		return err
	}
	if l.Owner.Token == "" {
		return nil // nobody's token: nothing of ours to release
	}
	_, err := s.leases.DeleteOne(ctx, bson.D{{Key: fID, Value: docID(l.Key)}, {Key: fToken, Value: l.Owner.Token}})
	return err
}

// Leases lists the unexpired leases of the namespace.
func (s *Store) Leases(ctx context.Context, namespace string) iter.Seq2[store.Lease, error] {
	return func(yield func(store.Lease, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(store.Lease{}, err)
			return
		}
		if err := store.ValidateNamespace(namespace); err != nil {
			yield(store.Lease{}, err)
			return
		}
		cur, err := s.leases.Find(ctx, bson.D{
			{Key: fNS, Value: namespace},
			{Key: fExpiresAt, Value: bson.D{{Key: "$gt", Value: nanos(s.now())}}},
		})
		if err != nil {
			yield(store.Lease{}, err)
			return
		}
		defer cur.Close(context.WithoutCancel(ctx))
		for cur.Next(ctx) {
			var d leaseDoc
			if err := cur.Decode(&d); err != nil {
				err = fmt.Errorf("%w: lease %v of %q: %w", ErrCorrupt, cur.Current.Lookup(fID), namespace, err)
				if !yield(store.Lease{}, err) {
					return
				}
				continue
			}
			if !yield(d.lease(), nil) {
				return
			}
		}
		if err := cur.Err(); err != nil {
			yield(store.Lease{}, err)
		}
	}
}

// ReleaseAll removes every lease of the namespace with one DeleteMany.
func (s *Store) ReleaseAll(ctx context.Context, namespace string) (int, error) {
	if err := store.ValidateNamespace(namespace); err != nil {
		return 0, err
	}
	res, err := s.leases.DeleteMany(ctx, bson.D{{Key: fNS, Value: namespace}})
	if err != nil {
		return 0, err
	}
	if _, err := s.leases.DeleteMany(ctx, bson.D{{Key: fClaimNS, Value: namespace}}); err != nil {
		return 0, err
	}
	return int(res.DeletedCount), nil
}

// Close disconnects the client if the store was opened from a URL; a collection passed
// to New keeps its client connected.
func (s *Store) Close() error {
	if s.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.client.Disconnect(ctx)
}
