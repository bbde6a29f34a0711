package mongostore

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachier-go/cachier/store"
)

var _ store.Versioner = (*Store)(nil)

// fVersion is the field of a counter document that holds its value.
const fVersion = "v"

// bumpRetries bounds Bump's retries of an upsert that lost an insert race.
const bumpRetries = 5

// Counter names are checked with store.ValidateCounter and used as the counter
// document's _id as is: a string _id may hold any such text.

// Versions returns the current value of each named counter (0 for one never bumped)
// with one Find of their _ids ($in). A counter document whose value is not an int64
// is an error matching ErrCorrupt.
func (s *Store) Versions(ctx context.Context, names []string) ([]uint64, error) {
	ids := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if err := store.ValidateCounter(n); err != nil {
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			ids = append(ids, n)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]uint64, len(names))
	if len(ids) == 0 {
		return out, nil
	}
	cur, err := s.versions.Find(ctx, bson.D{{Key: fID, Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	found := make(map[string]uint64, len(ids))
	for cur.Next(ctx) {
		id, ok := cur.Current.Lookup(fID).StringValueOK()
		if !ok {
			continue // not one of ours: $in matched a string
		}
		v, ok := cur.Current.Lookup(fVersion).Int64OK()
		if !ok {
			return nil, fmt.Errorf("mongostore: counter %q: value is not an int64: %w", id, ErrCorrupt)
		}
		found[id] = uint64(v)
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	for i, n := range names {
		out[i] = found[n]
	}
	return out, nil
}

// Bump sets the named counter to a fresh random non-zero value with one ReplaceOne
// upsert of {_id: name, v: value} and returns it. The value is random rather than an
// increment, so the write needs no atomic read-modify-write: FerretDB v1 runs an
// update's filter and its write as two steps, and concurrent bumps there, as on
// MongoDB, may overwrite each other, each leaving a value no entry has recorded. An
// upsert that loses the race to insert a new counter (a duplicate key error) is
// retried, and then replaces the winner's document.
func (s *Store) Bump(ctx context.Context, name string) (uint64, error) {
	if err := store.ValidateCounter(name); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	v := store.NewVersion()
	filter := bson.D{{Key: fID, Value: name}}
	doc := bson.D{{Key: fID, Value: name}, {Key: fVersion, Value: int64(v)}}
	var err error
	for range bumpRetries {
		_, err = s.versions.ReplaceOne(ctx, filter, doc, options.Replace().SetUpsert(true))
		if !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	return v, nil
}
