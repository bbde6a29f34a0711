package memstore

import (
	"context"
	"time"

	"github.com/cachier-go/cachier/store"
)

var _ store.ExpiryCleaner = (*Store)(nil)

// DeleteExpired implements store.ExpiryCleaner: it removes the entries of the
// namespace whose ExpiresAt is at or before now, in one pass over the shards.
func (s *Store) DeleteExpired(ctx context.Context, namespace string, now time.Time) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	return s.removeIf(namespace, func(it *item) bool { return it.e.Expired(now) }), nil
}
