package filestore

import (
	"context"
	"fmt"

	"github.com/cachier-go/cachier/store"
)

// Batches
//
// The store has no batch of its own: a batch is one Get per key. store.GetMany's
// fallback runs them on goroutines, which pays off for many keys (file systems
// answer concurrent reads at once, and a cold read waits for the disk), but a miss
// reads two or three files at a time (the entry, its lease record, a counter), where
// each read costs a few system calls and starting goroutines and waiting for them
// cost as much again. Small batches are therefore read in the caller's goroutine.

// seqBatch is the largest batch read in the caller's goroutine.
const seqBatch = 4

// batchParallel bounds the concurrent reads of a larger batch, as store.GetMany's
// fallback does.
const batchParallel = 16

var (
	_ store.Batcher     = (*Store)(nil)
	_ store.IntoBatcher = (*Store)(nil)
)

// GetMany implements store.Batcher: one Get per key, concurrently for more than a
// few keys.
func (s *Store) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
	if err := s.GetManyInto(ctx, ks, es, errs); err != nil {
		return nil, nil, err
	}
	return es, errs, nil
}

// GetManyInto implements store.IntoBatcher, as GetMany does.
func (s *Store) GetManyInto(ctx context.Context, ks []store.Key, es []store.Entry, errs []error) error {
	if len(es) != len(ks) || len(errs) != len(ks) {
		return fmt.Errorf("filestore: GetManyInto of %d keys into %d entries and %d errors", len(ks), len(es), len(errs))
	}
	if len(ks) <= seqBatch {
		for i, k := range ks {
			es[i], errs[i] = s.Get(ctx, k)
		}
	} else {
		store.Each(len(ks), batchParallel, func(i int) { es[i], errs[i] = s.Get(ctx, ks[i]) })
	}
	return ctx.Err()
}

// SetMany implements store.Batcher: one Set per key, concurrently (store.SetEach).
func (s *Store) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	return store.SetEach(ctx, s, ks, es)
}
