package memcachestore

import (
	"context"

	"github.com/cachier-go/cachier/store"
)

// GetMany reads the entries of ks, with their namespaces' generation counters, in
// one GetMulti (one round trip per memcached server). See store.Batcher for the
// results.
func (s *Store) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	if len(ks) == 0 {
		return nil, nil, ctx.Err()
	}
	ops := make([]op, len(ks), len(ks)+1)
	gen := map[string]int{} // namespace -> the index of its counter's op
	for i, k := range ks {
		ops[i] = op{verb: 'g', key: s.itemKey(k)}
		if _, ok := gen[k.Namespace]; !ok {
			gen[k.Namespace] = len(ops)
			ops = append(ops, op{verb: 'g', key: s.genKey(k.Namespace)})
		}
	}
	clears := s.clearCount()
	// Through the client even with Options.Addr: a batch of meta commands is written
	// whole before its answers are read, and a large batch's answers could fill the
	// socket buffers while the server waits for its own writes to be read.
	if err := ctx.Err(); err != nil { // the memcache client takes no context
		return nil, nil, err
	}
	if err := s.runClient(ops); err != nil {
		return nil, nil, err
	}
	es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
	for i, k := range ks {
		g := ops[gen[k.Namespace]]
		es[i], errs[i] = s.entryFrom(k, g.key, g.value, ops[i].value, clears)
	}
	return es, errs, nil
}

// SetMany stores es[i] under ks[i], up to 16 at once (memcached's text protocol has
// no multi-set). Each entry is stored atomically; errs[i] reports ks[i]'s failure.
func (s *Store) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	return store.SetEach(ctx, s, ks, es)
}
