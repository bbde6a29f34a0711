package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/cachier-go/cachier/store"
)

var _ store.ExpiryCleaner = (*Store)(nil)

var _ store.Expirer = (*Store)(nil)

// ExpiresNatively implements store.Expirer: an entry with ExpiresAt carries it as a
// date under a TTL index, so the server removes it by itself. It reports false once
// the server has refused the TTL index (FerretDB has none).
func (s *Store) ExpiresNatively() bool { return !s.noTTL.Load() }

// DeleteExpired implements store.ExpiryCleaner with one DeleteMany, without waiting
// for the TTL monitor.
func (s *Store) DeleteExpired(ctx context.Context, namespace string, now time.Time) (int, error) {
	res, err := s.coll.DeleteMany(ctx, bson.D{
		{Key: fNS, Value: namespace},
		{Key: fExpireAt, Value: bson.D{{Key: "$lte", Value: bson.DateTime(now.UnixMilli())}}},
	})
	if err != nil {
		return 0, err
	}
	return int(res.DeletedCount), nil
}
