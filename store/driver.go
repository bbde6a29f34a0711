package store

import "context"

// Driver is the required part of the store contract: the four methods every engine
// has. Everything else a store can do is an optional capability, declared by
// implementing the interface that names it (Batcher, Notifier, Versioner, ...), with a
// fallback in this package or in cachier where one can exist.
type Driver interface {
	// Get returns the entry for k, or an error matching ErrNotFound.
	Get(ctx context.Context, k Key) (Entry, error)
	// Set stores e under k, replacing any entry, atomically: a concurrent Get sees
	// the old entry or the new one, never a mix.
	Set(ctx context.Context, k Key, e Entry) error
	// Delete removes the entry for k. Deleting a missing entry returns nil.
	Delete(ctx context.Context, k Key) error
	// Close releases the driver's own resources.
	Close() error
}
