package store

import (
	"context"
	"errors"
	"fmt"
)

// CompareAndSet stores e at k if and only if k's entry has the value old, byte for
// byte (old == nil: k has no entry), atomically across every process that shares the
// engine, and reports whether it did: false with a nil error means k held something
// else, and nothing changed. It needs a driver with [Swapper], under a Store from
// [Adapt] or as st itself; otherwise it returns an error matching
// errors.ErrUnsupported and changes nothing. Through a Store, a change wakes the
// Store's watchers of k in this process, as Set does.
func CompareAndSet(ctx context.Context, st Driver, k Key, old []byte, e Entry) (bool, error) {
	if a, ok := st.(adapted); ok {
		p := a.base()
		if p.swapper == nil {
			return false, errNoSwap
		}
		if err := p.checkRecord(ctx, k); err != nil {
			return false, err
		}
		swapped, err := p.swapper.Swap(ctx, k, old, &e)
		if swapped || err != nil {
			p.changed(k)
		}
		return swapped, err
	}
	if sw, ok := st.(Swapper); ok {
		return sw.Swap(ctx, k, old, &e)
	}
	return false, errNoSwap
}

// CanCompareAndSet reports whether CompareAndSet works on st.
func CanCompareAndSet(st Driver) bool {
	if a, ok := st.(adapted); ok {
		return a.base().swapper != nil
	}
	_, ok := st.(Swapper)
	return ok
}

var errNoSwap = fmt.Errorf("store: CompareAndSet: %w (the driver does not implement store.Swapper)", errors.ErrUnsupported)
