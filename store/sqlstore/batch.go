package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/cachier-go/cachier/store"
)

var _ store.Batcher = (*Store)(nil)

// maxInList bounds the IDs of one SELECT ... IN, well under every engine's limit on
// parameters (SQLite's is 32766, PostgreSQL's 65535).
const maxInList = 500

// GetMany reads the entries of ks with one SELECT ... WHERE namespace = ? AND id IN
// (...) per namespace (and per 500 keys). See store.Batcher for the results.
func (s *Store) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
	for i, k := range ks {
		errs[i] = fmt.Errorf("%w: %s", store.ErrNotFound, k)
	}
	byNS := map[string][]int{}
	var order []string
	for i, k := range ks {
		if _, ok := byNS[k.Namespace]; !ok {
			order = append(order, k.Namespace)
		}
		byNS[k.Namespace] = append(byNS[k.Namespace], i)
	}
	from := " FROM " + s.dialect.quote(s.table)
	for _, ns := range order {
		idx := byNS[ns]
		for len(idx) > 0 {
			n := min(len(idx), maxInList)
			if err := s.getIn(ctx, from, ns, ks, idx[:n], es, errs); err != nil {
				return nil, nil, err
			}
			idx = idx[n:]
		}
	}
	return es, errs, nil
}

// getIn reads the entries of ks[idx], all of namespace ns, into es and errs.
func (s *Store) getIn(ctx context.Context, from, ns string, ks []store.Key, idx []int, es []store.Entry, errs []error) error {
	var q strings.Builder
	q.WriteString("SELECT id, stored_at, value, expires_at" + from + " WHERE namespace = " + s.dialect.ph(1) + " AND id IN (")
	args := make([]any, 0, len(idx)+1)
	args = append(args, ns)
	at := map[string][]int{} // id -> positions in ks (a batch may repeat a key)
	for j, i := range idx {
		if j > 0 {
			q.WriteString(", ")
		}
		q.WriteString(s.dialect.ph(j + 2))
		args = append(args, ks[i].ID)
		at[ks[i].ID] = append(at[ks[i].ID], i)
	}
	q.WriteString(")")
	_, err := read(ctx, s, q.String(), args, func(rows *sql.Rows) (struct{}, error) {
		for rows.Next() {
			var (
				id      string
				st, exp sql.NullInt64
				v       sql.Null[[]byte]
			)
			if err := rows.Scan(&id, &st, &v, &exp); err != nil {
				return struct{}{}, err
			}
			for _, i := range at[id] {
				es[i], errs[i] = entry(ks[i], st, v, exp)
			}
		}
		return struct{}{}, nil
	})
	return err
}

// SetMany upserts es[i] under ks[i], up to 16 at once over the pool's connections:
// a multi-row upsert would be one round trip, but PostgreSQL's upsert also notifies
// each key's watchers, which one statement per key keeps simple. Each entry is stored
// atomically; errs[i] reports ks[i]'s failure.
func (s *Store) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	return store.SetEach(ctx, s, ks, es)
}
