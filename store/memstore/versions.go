package memstore

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/cachier-go/cachier/store"
)

// versions holds the store's version counters. They live apart from the entries, so
// eviction never drops one: a dropped counter would read as 0 again and could bring
// back entries that an invalidation retired.
type versions struct {
	mu sync.RWMutex
	m  map[string]uint64
	// epoch moves with every Bump (tier.Source.CountersEpoch).
	epoch atomic.Uint64
}

var _ store.Versioner = (*Store)(nil)

// Versions returns the current value of each named counter (0 if never bumped).
func (s *Store) Versions(ctx context.Context, names []string) ([]uint64, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	out := make([]uint64, len(names))
	s.versions.mu.RLock()
	for i, n := range names {
		out[i] = s.versions.m[n]
	}
	s.versions.mu.RUnlock()
	return out, nil
}

// Bump moves the named counter to a new random non-zero value and returns it.
func (s *Store) Bump(ctx context.Context, name string) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	v := store.NewVersion()
	s.versions.mu.Lock()
	if s.versions.m == nil {
		s.versions.m = map[string]uint64{}
	}
	for v == s.versions.m[name] {
		v = store.NewVersion()
	}
	s.versions.m[name] = v
	s.versions.epoch.Add(1)
	s.versions.mu.Unlock()
	return v, nil
}
