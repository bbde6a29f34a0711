package store

import (
	"context"
	"errors"
)

func (p *portable) checkCounters(ctx context.Context, names []string) error {
	if err := p.ready(ctx); err != nil {
		return err
	}
	for _, n := range names {
		if err := ValidateCounter(n); err != nil {
			return err
		}
	}
	return nil
}

// Versions implements Versioner: the driver's own counters if it keeps them, records
// read with one batch (see [Batcher]) otherwise.
func (p *portable) Versions(ctx context.Context, names []string) ([]uint64, error) {
	if err := p.checkCounters(ctx, names); err != nil {
		return nil, err
	}
	if p.versioner != nil {
		return p.versioner.Versions(ctx, names)
	}
	es, errs, err := GetMany(ctx, p.d, counterKeys(names))
	if err != nil {
		return nil, err
	}
	return counters(names, es, errs)
}

// counters decodes the counter records es (errs[i] is the read error of es[i]).
func counters(names []string, es []Entry, errs []error) ([]uint64, error) {
	vs := make([]uint64, len(names))
	for i, n := range names {
		switch err := errs[i]; {
		case errors.Is(err, ErrCorrupt):
			// Never 0: a damaged counter read as 0 could revive invalidated entries.
			return nil, err
		case err == nil:
			v, err := decodeCounter(n, es[i].Value)
			if err != nil {
				return nil, err
			}
			vs[i] = v
		case errors.Is(err, ErrNotFound): // a missing counter reads as 0
		default:
			return nil, err
		}
	}
	return vs, nil
}

// Bump implements Versioner: a new random value, written with a plain Set (see
// [Versioner.Bump] for why that is enough).
func (p *portable) Bump(ctx context.Context, name string) (uint64, error) {
	if err := p.checkCounters(ctx, []string{name}); err != nil {
		return 0, err
	}
	if p.versioner != nil {
		return p.versioner.Bump(ctx, name)
	}
	v := NewVersion()
	if err := p.d.Set(ctx, counterKey(name), Entry{Value: encodeCounter(v), StoredAt: p.clk.Now()}); err != nil {
		return 0, err
	}
	return v, nil
}

// GetVersioned implements VersionedGetter: the driver's own if it has one, else the
// entry and the counter records in one batch.
func (p *portable) GetVersioned(ctx context.Context, k Key, names []string) (Entry, []uint64, error) {
	e, vs, err := p.getVersioned(ctx, k, names)
	if err == nil && !e.ExpiresAt.IsZero() {
		if e, err = p.unexpired(k, e, nil); err != nil {
			return Entry{}, nil, err
		}
	}
	return e, vs, err
}

func (p *portable) getVersioned(ctx context.Context, k Key, names []string) (Entry, []uint64, error) {
	if err := p.check(ctx, k); err != nil {
		return Entry{}, nil, err
	}
	if err := p.checkCounters(ctx, names); err != nil {
		return Entry{}, nil, err
	}
	switch {
	case p.vgetter != nil:
		return p.vgetter.GetVersioned(ctx, k, names)
	case p.versioner != nil:
		e, err := p.d.Get(ctx, k)
		if err != nil {
			return Entry{}, nil, err
		}
		vs, err := p.versioner.Versions(ctx, names)
		return e, vs, err
	}
	ks := make([]Key, 1+len(names))
	ks[0] = k
	for i, n := range names {
		ks[1+i] = counterKey(n)
	}
	es, errs, err := GetMany(ctx, p.d, ks)
	if err != nil {
		return Entry{}, nil, err
	}
	if errs[0] != nil {
		return Entry{}, nil, errs[0]
	}
	vs, err := counters(names, es[1:], errs[1:])
	if err != nil {
		return Entry{}, nil, err
	}
	return es[0], vs, nil
}
