package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/cachier-go/cachier/store"
)

var _ store.Batcher = (*Store)(nil)

// maxIn bounds the IDs of one find with $in.
const maxIn = 500

// GetMany reads the entries of ks with one find of {_id: {$in: [...]}} per 500
// keys. See store.Batcher for the results.
func (s *Store) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	at := make(map[string][]int, len(ks)) // document ID -> positions in ks
	ids := make([]string, 0, len(ks))
	for i, k := range ks {
		id := docID(k)
		if _, ok := at[id]; !ok {
			ids = append(ids, id)
		}
		at[id] = append(at[id], i)
	}
	es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
	for i, k := range ks {
		errs[i] = store.NotFound(k)
	}
	for len(ids) > 0 {
		n := min(len(ids), maxIn)
		cur, err := s.coll.Find(ctx, bson.D{{Key: fID, Value: bson.D{{Key: "$in", Value: ids[:n]}}}})
		if err != nil {
			return nil, nil, err
		}
		for cur.Next(ctx) {
			raw := cur.Current
			idv, err := raw.LookupErr(fID)
			if err != nil {
				continue
			}
			id, ok := idv.StringValueOK()
			if !ok {
				continue
			}
			// cur.Current is reused by the next Next: each entry keeps its own copy.
			doc := append(bson.Raw(nil), raw...)
			for _, i := range at[id] {
				es[i], errs[i] = decodeEntry(ks[i], doc)
			}
		}
		err = cur.Err()
		_ = cur.Close(ctx)
		if err != nil {
			return nil, nil, err
		}
		ids = ids[n:]
	}
	return es, errs, nil
}

// SetMany stores es[i] under ks[i], up to 16 at once. Each entry is stored
// atomically; errs[i] reports ks[i]'s failure.
func (s *Store) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	return store.SetEach(ctx, s, ks, es)
}
