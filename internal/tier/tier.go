// Package tier holds what an in-process store shares with cachier's typed first level
// (the per-function map from an argument to its decoded result), so that the first
// level is dropped exactly when the store's entry is.
//
// A store that keeps entries in this process (memstore) hands out a [Ticket] with each
// entry, and kills it when the entry is replaced, deleted, cleared, evicted or the store
// is closed. cachier's first level keeps the ticket beside the decoded value and serves
// the value only while the ticket lives: one atomic load on a hit.
package tier

import (
	"context"
	"sync/atomic"

	"github.com/cachier-go/cachier/store"
)

// Ticket is the life of one stored entry, as seen by the copies made of it. The zero
// value is alive.
type Ticket struct{ dead atomic.Bool }

// Alive reports whether the entry the ticket was issued for is still the stored one.
func (t *Ticket) Alive() bool { return !t.dead.Load() }

// Kill marks the entry as gone; every copy made under the ticket stops being served.
func (t *Ticket) Kill() { t.dead.Store(true) }

// Source is implemented by in-process stores whose entries carry tickets.
type Source interface {
	// GetTicketed is GetLive that also returns the entry's ticket.
	GetTicketed(ctx context.Context, k store.Key) (e store.Entry, live any, t *Ticket, err error)
	// CountersEpoch changes whenever a version counter of the store is bumped: a copy of
	// an entry that depends on counters is served only while the epoch it was checked
	// under holds.
	CountersEpoch() uint64
	// Writes counts the entries stored so far, counted once each is readable: equal
	// before a read of a key and later, nothing was stored under the key meanwhile.
	Writes() uint64
}
