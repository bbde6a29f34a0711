package memcachestore

import (
	"context"

	"github.com/cachier-go/cachier/store"
)

// GetMany reads the entries of ks, with their namespaces' generation counters, in
// one GetMulti (one round trip per memcached server). See store.Batcher for the
// results.
func (s *Store) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	if err := ctx.Err(); err != nil { // the memcache client takes no context
		return nil, nil, err
	}
	names := make([]string, 0, len(ks)+1)
	eks, gks := make([]string, len(ks)), map[string]string{}
	for i, k := range ks {
		eks[i] = s.itemKey('e', k)
		names = append(names, eks[i])
		if _, ok := gks[k.Namespace]; !ok {
			gks[k.Namespace] = s.genKey('g', k.Namespace)
			names = append(names, gks[k.Namespace])
		}
	}
	if len(ks) == 0 {
		return nil, nil, nil
	}
	clears := s.clearCount()
	items, err := s.c.GetMulti(names)
	if err != nil {
		return nil, nil, err
	}
	es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
	for i, k := range ks {
		es[i], errs[i] = s.entryOf(k, gks[k.Namespace], eks[i], items, clears)
	}
	return es, errs, nil
}

// SetMany stores es[i] under ks[i], up to 16 at once (memcached's text protocol has
// no multi-set). Each entry is stored atomically; errs[i] reports ks[i]'s failure.
func (s *Store) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	return store.SetEach(ctx, s, ks, es)
}
