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

// Field names.
const (
	fID       = "_id"
	fNS       = "ns"
	fKeyID    = "id"
	fStoredAt = "stored_at"
	fSize     = "size"
	fValue    = "value"
	// fExpireAt is an entry's ExpiresAt, a BSON date (milliseconds) so that the TTL
	// index on it lets the server remove the entry; absent when it never expires.
	fExpireAt = "expire_at"
	// fClaimUntil is a swap claim's expiry, int64 Unix nanoseconds by Options.Clock.
	fClaimUntil = "claim_until"
)

// Options configure a Store. The zero value (or nil) uses the defaults.
type Options struct {
	// Clock returns the current time, by which a swap claim left behind by a process
	// that died mid-swap expires (see Swap). Default time.Now. Lease expiry is the
	// portable layer's (store.WithClock).
	Clock func() time.Time
}

// Store is a store.Driver on a MongoDB collection, with the Swapper, Lister, Batcher
// and Expirer capabilities. It is safe for concurrent use.
type Store struct {
	coll   *mongo.Collection
	now    func() time.Time
	client *mongo.Client // set when the store owns its client (opened from a URL)

	indexes store.Init
	noTTL   atomic.Bool // the server refused the TTL index
	// idOnly: the server reads by a filter on _id alone without scanning the
	// collection, and scans for any other (FerretDB v1: $in, or _id and a value).
	idOnly  atomic.Bool
	filters bool // tests: $in and filtered deletes even where idOnly would be set
}

// The capabilities Store declares.
var _ interface {
	store.Driver
	store.Swapper
	store.Lister
	store.Batcher
	store.Expirer
	store.ExpiryCleaner
	store.ReadOrAcquirer
	store.WriteAndReleaser
	store.Pinger
} = (*Store)(nil)

// New returns a driver keeping entries, and the portable layer's lease and counter
// records, in coll. The collection and its indexes are created on first use. The
// client behind coll stays the caller's: Close does not disconnect it. Use it through
// store.Adapt (cachier does so itself).
func New(coll *mongo.Collection, opts *Options) (*Store, error) {
	if coll == nil {
		return nil, errors.New("mongostore: nil collection")
	}
	o := store.OptionsOf(opts)
	if err := ValidateCollectionName(coll.Name()); err != nil {
		return nil, err
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Store{coll: coll, now: o.Clock}, nil
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
	for i := range len(name) {
		if !store.NameByte(name[i], false) { // a letter, a digit, '-', '_' or '.'
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
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return store.UnixNano(t)
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
	return s.indexes.Do(ctx, func() error {
		var bi bson.Raw
		if err := s.coll.Database().RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&bi); err == nil {
			_, err := bi.LookupErr("ferretdbVersion")
			s.idOnly.Store(err == nil && !s.filters)
		}
		if _, err := s.coll.Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys:    bson.D{{Key: fNS, Value: 1}, {Key: fStoredAt, Value: 1}},
			Options: options.Index().SetName("cachier_ns_stored_at"),
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
		return nil
	})
}

func corrupt(k store.Key, format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s: %s", store.ErrNotFound, ErrCorrupt, k, fmt.Sprintf(format, args...))
}

// Get returns the entry of k with one FindOne by _id.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	raw, err := s.coll.FindOne(ctx, bson.D{{Key: fID, Value: docID(k)}}).Raw()
	if err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return store.Entry{}, store.NotFound(k)
		}
		return store.Entry{}, err
	}
	return decodeEntry(k, raw)
}

func decodeEntry(k store.Key, raw bson.Raw) (store.Entry, error) {
	// Lookup answers a missing field, or a document that does not parse, with an
	// empty value, which no ...OK accepts and whose type prints as "invalid".
	if ns, ok := raw.Lookup(fNS).StringValueOK(); !ok || ns != k.Namespace {
		return store.Entry{}, corrupt(k, "document has no namespace %q", k.Namespace)
	}
	if id, ok := raw.Lookup(fKeyID).StringValueOK(); !ok || id != k.ID {
		return store.Entry{}, corrupt(k, "document has no id %q", k.ID)
	}
	// Only the int64 the store writes: AsInt64OK would take an int32 or a double too,
	// and a double cannot hold today's Unix nanoseconds exactly (a wrong time).
	v := raw.Lookup(fStoredAt)
	at, ok := v.Int64OK()
	if !ok {
		return store.Entry{}, corrupt(k, "%s: want an int64, have %s", fStoredAt, v.Type)
	}
	v = raw.Lookup(fValue)
	sub, data, ok := v.BinaryOK()
	if !ok || sub != bson.TypeBinaryGeneric {
		return store.Entry{}, corrupt(k, "%s: want generic binary, have %s", fValue, v.Type)
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
	doc, err := s.entryDoc(ctx, k, e)
	if err != nil {
		return err
	}
	// Concurrent upserts of a new _id can both try to insert it: the loser gets a
	// duplicate key error, and its retry replaces the document the winner inserted.
	for range upsertRetries {
		_, err = s.coll.ReplaceOne(ctx, bson.D{{Key: fID, Value: docID(k)}}, doc, options.Replace().SetUpsert(true))
		if !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	return tooLarge(k, err)
}

// upsertRetries bounds Set's retries of an upsert that lost an insert race.
const upsertRetries = 5

// entryDoc returns the document of e under k, once the indexes exist.
func (s *Store) entryDoc(ctx context.Context, k store.Key, e store.Entry) (bson.D, error) {
	if n := len(e.Value) + 2*len(k.Namespace) + 2*len(k.ID) + docOverhead; n > MaxDocumentSize {
		return nil, fmt.Errorf("%w: %s: value of %d bytes does not fit a %d-byte document", store.ErrTooLarge, k, len(e.Value), MaxDocumentSize)
	}
	if err := s.ensureIndexes(ctx); err != nil {
		return nil, err
	}
	value := e.Value
	if value == nil {
		value = []byte{} // a nil slice would be stored as BSON null
	}
	doc := bson.D{
		{Key: fID, Value: docID(k)},
		{Key: fNS, Value: k.Namespace},
		{Key: fKeyID, Value: k.ID},
		{Key: fStoredAt, Value: nanos(e.StoredAt)},
		{Key: fSize, Value: int64(len(e.Value))},
		{Key: fValue, Value: bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: value}},
	}
	if !e.ExpiresAt.IsZero() {
		doc = append(doc, bson.E{Key: fExpireAt, Value: bson.DateTime(e.ExpiresAt.UnixMilli())})
	}
	return doc, nil
}

func tooLarge(k store.Key, err error) error {
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
	_, err := s.coll.DeleteOne(ctx, bson.D{{Key: fID, Value: docID(k)}})
	return err
}

// Clear removes every entry of the namespace with one DeleteMany.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	_, err := s.coll.DeleteMany(ctx, bson.D{{Key: fNS, Value: namespace}})
	return err
}

// DeleteBefore removes the entries of the namespace stored before t.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	return s.deleteMany(ctx, bson.D{
		{Key: fNS, Value: namespace},
		{Key: fStoredAt, Value: bson.D{{Key: "$lt", Value: nanos(t)}}},
	})
}

// deleteMany removes the documents filter matches and returns how many.
func (s *Store) deleteMany(ctx context.Context, filter bson.D) (int, error) {
	res, err := s.coll.DeleteMany(ctx, filter)
	if err != nil {
		return 0, err
	}
	return int(res.DeletedCount), nil
}

// Entries lists the entries of the namespace, without their values. A document that
// cannot be read yields an error matching ErrCorrupt, and the listing goes on.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		cur, err := s.coll.Find(ctx, bson.D{{Key: fNS, Value: namespace}},
			options.Find().SetProjection(bson.D{{Key: fKeyID, Value: 1}, {Key: fStoredAt, Value: 1}, {Key: fSize, Value: 1}, {Key: fExpireAt, Value: 1}}))
		if err != nil {
			yield(store.Info{}, err)
			return
		}
		defer cur.Close(context.WithoutCancel(ctx))
		for cur.Next(ctx) {
			info, err := decodeInfo(namespace, cur.Current)
			if err != nil {
				err = fmt.Errorf("%w: entry %v of %q: %w", ErrCorrupt, cur.Current.Lookup(fID), namespace, err)
			}
			if !yield(info, err) {
				return
			}
		}
		if err := cur.Err(); err != nil {
			yield(store.Info{}, err)
		}
	}
}

// decodeInfo reads a document of Entries as strictly as decodeEntry reads an entry:
// decoding into Go types would take a stored_at or size of any number type, a
// boolean or a null, and list a time or size made up from it (a double cannot hold
// today's Unix nanoseconds exactly).
func decodeInfo(namespace string, raw bson.Raw) (store.Info, error) {
	id, ok := raw.Lookup(fKeyID).StringValueOK()
	if !ok {
		return store.Info{}, fmt.Errorf("%s: want a string, have %s", fKeyID, raw.Lookup(fKeyID).Type)
	}
	v := raw.Lookup(fStoredAt)
	at, ok := v.Int64OK()
	if !ok {
		return store.Info{}, fmt.Errorf("%s: want an int64, have %s", fStoredAt, v.Type)
	}
	v = raw.Lookup(fSize)
	size, ok := v.Int64OK()
	if !ok {
		return store.Info{}, fmt.Errorf("%s: want an int64, have %s", fSize, v.Type)
	}
	info := store.Info{Key: store.Key{Namespace: namespace, ID: id}, Size: size, StoredAt: fromNanos(at)}
	if v, err := raw.LookupErr(fExpireAt); err == nil {
		dt, ok := v.DateTimeOK()
		if !ok {
			return store.Info{}, fmt.Errorf("%s is a %s, not a date", fExpireAt, v.Type)
		}
		info.ExpiresAt = time.UnixMilli(dt)
	}
	return info, nil
}

// Namespaces lists the namespaces that have entries (the portable layer's lease and
// counter namespaces among them), in no order: the portable layer sorts them.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	var nss []string
	filter := bson.D{{Key: fNS, Value: bson.D{{Key: "$type", Value: "string"}}}}
	err := s.coll.Distinct(ctx, fNS, filter).Decode(&nss)
	return nss, err
}

// ClaimTTL is how long a swap claim blocks other swaps of the same value; only a
// process that dies between claiming and swapping (a takeover, a renewal, or the
// release at the end of a miss) leaves one behind. So a lease whose holder was killed
// in that moment can be taken over up to ClaimTTL after the kill, rather than after
// the lease's own expiry.
const ClaimTTL = 30 * time.Second

// maxClaims bounds the chain of claims on one value (each left by a swapper that died).
const maxClaims = 8

// Swap implements store.Swapper. Create-if-absent is an InsertOne: the unique _id
// makes exactly one of any number of concurrent callers win. A compare-and-swap (or a
// delete) first inserts a claim whose _id is derived from k and old, so that of all
// the callers swapping from the same value exactly one proceeds, and then replaces (or
// deletes) the document with a filter on its value, and drops the claim. The claim is
// needed because FerretDB v1 evaluates a filtered update as a read and a write: with
// the filter alone, every one of eight callers racing to take over one expired lease
// "won" it there. A unique insert is atomic on every server.
func (s *Store) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	id := docID(k)
	if old == nil {
		if next == nil {
			n, err := s.coll.CountDocuments(ctx, bson.D{{Key: fID, Value: id}})
			return n == 0, err
		}
		doc, err := s.entryDoc(ctx, k, *next)
		if err != nil {
			return false, err
		}
		if _, err := s.coll.InsertOne(ctx, doc); err != nil {
			if mongo.IsDuplicateKeyError(err) {
				return false, nil
			}
			return false, tooLarge(k, err)
		}
		return true, nil
	}
	var doc bson.D
	if next != nil {
		var err error
		if doc, err = s.entryDoc(ctx, k, *next); err != nil {
			return false, err
		}
	}
	claim, err := s.claim(ctx, id, old)
	if err != nil || claim == "" {
		return false, err
	}
	// The claim goes once the swap is done: the value it claims is gone, or was
	// never there. If deleting it fails, it expires after ClaimTTL.
	defer s.coll.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: fID, Value: claim}}) //nolint:errcheck
	filter := bson.D{{Key: fID, Value: id}, {Key: fValue, Value: bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: old}}}
	if next == nil {
		res, err := s.coll.DeleteOne(ctx, filter)
		if err != nil {
			return false, err
		}
		return res.DeletedCount == 1, nil
	}
	res, err := s.coll.ReplaceOne(ctx, filter, doc)
	if err != nil {
		return false, tooLarge(k, err)
	}
	return res.MatchedCount == 1, nil
}

// claim inserts the one swap claim on the value old of the document id and returns
// its _id, or "" if another caller holds it. A claim left by a swapper that died
// expires after ClaimTTL, and the next claim in the chain (another unique _id) is
// taken instead of deleting it. Claims have no "ns", so no listing shows them.
func (s *Store) claim(ctx context.Context, id string, old []byte) (string, error) {
	base := claimBase(id, old)
	now := s.now()
	for n := range maxClaims {
		cid := base + strconv.Itoa(n)
		_, err := s.coll.InsertOne(ctx, bson.D{{Key: fID, Value: cid}, {Key: fClaimUntil, Value: nanos(now.Add(ClaimTTL))}})
		if err == nil {
			return cid, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return "", err
		}
		var c struct {
			Until int64 `bson:"claim_until"`
		}
		err = s.coll.FindOne(ctx, bson.D{{Key: fID, Value: cid}}).Decode(&c)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			return "", nil // its swapper finished: the value it claimed has changed
		case err != nil:
			return "", err
		case c.Until > nanos(now):
			return "", nil // being swapped
		}
	}
	return "", nil
}

// claimBase is the _id of the claims on the value old of the document id, without
// the claim's number in the chain.
func claimBase(id string, old []byte) string {
	h := sha256.New()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(old)
	return "claim:" + hex.EncodeToString(h.Sum(nil)[:16]) + ":"
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

// maxIn bounds the IDs of one find with $in.
const maxIn = 500

// GetMany reads the entries of ks with one find of {_id: {$in: [...]}} per 500
// keys. See store.Batcher for the results.
func (s *Store) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = docID(k)
	}
	docs := make(map[string]bson.Raw, len(ks))
	for chunk := range slices.Chunk(slices.Compact(slices.Sorted(slices.Values(ids))), maxIn) {
		if err := s.find(ctx, bson.D{{Key: fID, Value: bson.D{{Key: "$in", Value: chunk}}}}, docs); err != nil {
			return nil, nil, err
		}
	}
	es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
	for i, k := range ks {
		if raw, ok := docs[ids[i]]; ok {
			es[i], errs[i] = decodeEntry(k, raw)
		} else {
			errs[i] = store.NotFound(k)
		}
	}
	return es, errs, nil
}

// SetMany stores es[i] under ks[i], up to 16 at once. Each entry is stored
// atomically; errs[i] reports ks[i]'s failure.
func (s *Store) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	return store.SetEach(ctx, s, ks, es)
}

// ExpiresNatively implements store.Expirer: an entry with ExpiresAt carries it as a
// date under a TTL index, so the server removes it by itself. It reports false once
// the server has refused the TTL index (FerretDB has none).
func (s *Store) ExpiresNatively() bool { return !s.noTTL.Load() }

// DeleteExpired implements store.ExpiryCleaner with one DeleteMany, without waiting
// for the TTL monitor.
func (s *Store) DeleteExpired(ctx context.Context, namespace string, now time.Time) (int, error) {
	return s.deleteMany(ctx, bson.D{
		{Key: fNS, Value: namespace},
		{Key: fExpireAt, Value: bson.D{{Key: "$lte", Value: bson.DateTime(now.UnixMilli())}}},
	})
}
