package memstore

import (
	"context"

	"github.com/cachier-go/cachier/internal/tier"
	"github.com/cachier-go/cachier/store"
)

var _ tier.Source = (*Store)(nil)

// GetTicketed is GetLive that also returns the entry's ticket, which the store kills
// when the entry stops being the stored one (replaced, deleted, cleared, evicted, or
// the store closed). cachier's typed first level keeps it beside its copy.
func (s *Store) GetTicketed(ctx context.Context, k store.Key) (store.Entry, any, *tier.Ticket, error) {
	it, err := s.find(ctx, k)
	if err != nil {
		return store.Entry{}, nil, nil, err
	}
	if it == nil {
		return store.Entry{}, nil, nil, errLiveMiss
	}
	return it.e, it.live, &it.life, nil
}

// Writes counts the entries stored so far; it moves after each is readable.
func (s *Store) Writes() uint64 { return s.writes.Load() }

// CountersEpoch changes with every Bump of a version counter.
func (s *Store) CountersEpoch() uint64 { return s.versions.epoch.Load() }
