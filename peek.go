package cachier

import "context"

// Freshness says what Peek found in the store for an argument.
type Freshness uint8

// What Peek can find.
const (
	// Missing: no usable result (none stored, a damaged one, or one invalidated by a
	// tag, a prefix or a dependency). Call would compute.
	Missing Freshness = iota
	// Fresh: a result Call would return as a hit.
	Fresh
	// Stale: a result past its stale limit (StaleAfter, MaxAge, or its own
	// StaleAfterFunc limit). Call would compute, or with NextTime return it and
	// refresh it in the background.
	Stale
)

// String returns "missing", "fresh" or "stale".
func (f Freshness) String() string {
	switch f {
	case Fresh:
		return "fresh"
	case Stale:
		return "stale"
	}
	return "missing"
}

// Peek reads the stored result for arg and says whether it is fresh, stale or
// missing, by the rules Call applies (the function's and opts' StaleAfter and
// MaxAge, a per-entry StaleAfterFunc limit, tags, prefixes and dependencies), without
// computing, waiting, refreshing or counting anything. The result is returned when it
// is Fresh or Stale.
//
// It is for callers that act on staleness themselves, such as a command that serves
// a stale result and hands the refresh to another process. A store error is returned
// only with FailOnStoreError; otherwise it is reported as Missing.
func (f *Func[A, R]) Peek(ctx context.Context, arg A, opts ...Option) (R, Freshness, error) {
	var zero R
	s, err := f.settings(opts)
	if err != nil {
		return zero, Missing, err
	}
	k, err := f.Key(arg)
	if err != nil {
		return zero, Missing, err
	}
	h, ok, err := f.lookup(ctx, s, k, arg)
	if err != nil || !ok {
		return zero, Missing, err
	}
	limit := s.effectiveLimit(h.ttl)
	if limit == 0 || (limit > 0 && s.clock.Now().Sub(h.storedAt) < limit) {
		return h.v, Fresh, nil
	}
	return h.v, Stale, nil
}
