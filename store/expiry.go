package store

import (
	"context"
	"fmt"
	"time"
)

// ExpiryCleaner is an optional capability of listers that can remove, in one pass of
// the engine (one SQL DELETE, say), the entries of a namespace whose Entry.ExpiresAt
// is at or before now. Without it, the portable layer's DeleteBefore walks Entries
// and deletes those whose [Info.ExpiresAt] has passed; a driver that neither keeps
// ExpiresAt in Info nor implements this leaves expired entries to age-based cleanup
// (they are misses all the same).
type ExpiryCleaner interface {
	// DeleteExpired removes the entries of the namespace that expired at or before
	// now and returns how many it removed.
	DeleteExpired(ctx context.Context, namespace string, now time.Time) (int, error)
}

// Expired reports whether e is past its ExpiresAt at now: a read of it is a miss.
func (e *Entry) Expired(now time.Time) bool {
	return !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt)
}

// expiredError is the miss of an entry past its ExpiresAt.
type expiredError struct {
	key Key
	at  time.Time
}

func (e *expiredError) Error() string {
	return fmt.Sprintf("store: entry %s expired at %s: %v", e.key, e.at.Format(time.RFC3339Nano), ErrNotFound)
}

func (e *expiredError) Unwrap() error { return ErrNotFound }

// unexpired turns a read of an entry past its ExpiresAt, by the portable layer's
// clock, into a miss. An entry without ExpiresAt costs no clock reading.
func (p *portable) unexpired(k Key, e Entry, err error) (Entry, error) {
	if err == nil && !e.ExpiresAt.IsZero() && e.Expired(p.clk.Now()) {
		return Entry{}, &expiredError{key: k, at: e.ExpiresAt}
	}
	return e, err
}

// unexpiredMany is unexpired for each of es in place: it writes only the entries
// that expired (a batch's slices are written once by the driver, not again), and
// reads the clock once, for the first entry with an ExpiresAt.
func (p *portable) unexpiredMany(ks []Key, es []Entry, errs []error) {
	var now time.Time
	for i := range es {
		e := &es[i]
		if errs[i] != nil || e.ExpiresAt.IsZero() {
			continue
		}
		if now.IsZero() {
			now = p.clk.Now()
		}
		if e.Expired(now) {
			errs[i] = &expiredError{key: ks[i], at: e.ExpiresAt}
			*e = Entry{}
		}
	}
}

// deleteExpired removes the expired entries of ns: the driver's ExpiryCleaner, or a
// walk of its listing.
func (p *portable) deleteExpired(ctx context.Context, ns string) (int, error) {
	now := p.clk.Now()
	if c, ok := p.d.(ExpiryCleaner); ok {
		return c.DeleteExpired(ctx, ns, now)
	}
	n := 0
	for info, err := range p.lister.Entries(ctx, ns) {
		if err != nil {
			return n, err
		}
		if info.ExpiresAt.IsZero() || now.Before(info.ExpiresAt) {
			continue
		}
		if err := p.d.Delete(ctx, info.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
