package memstore

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/cachier-go/cachier/store"
)

// Acquire takes the lease on k for o until ttl from now by the store's clock. An
// unexpired lease of another owner makes it fail with a *store.HeldError; one with
// o's own token is renewed, so retrying an Acquire whose outcome was unknown is safe.
func (s *Store) Acquire(ctx context.Context, k store.Key, o store.Owner, ttl time.Duration) (store.Lease, error) {
	if err := s.check(ctx); err != nil {
		return store.Lease{}, err
	}
	if ttl <= 0 {
		return store.Lease{}, fmt.Errorf("memstore: acquire %q: lease ttl must be positive, got %s", k.String(), ttl)
	}
	now := s.clock()
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cur, ok := sh.leases[k]; ok && now.Before(cur.expires) && cur.owner.Token != o.Token {
		return store.Lease{}, &store.HeldError{Holder: store.Lease{Key: k, Owner: cur.owner, ExpiresAt: cur.expires}}
	}
	rec := leaseRec{owner: o, expires: now.Add(ttl)}
	sh.leases[k] = rec
	sh.leaseChanged(s, k, rec.expires)
	return store.Lease{Key: k, Owner: o, ExpiresAt: rec.expires}, nil
}

// Renew extends l to ttl from now if it is still l.Owner's (same token, unexpired).
func (s *Store) Renew(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error) {
	if err := s.check(ctx); err != nil {
		return store.Lease{}, err
	}
	if ttl <= 0 {
		return store.Lease{}, fmt.Errorf("memstore: renew %q: lease ttl must be positive, got %s", l.Key.String(), ttl)
	}
	now := s.clock()
	sh := s.shard(l.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur, ok := sh.leases[l.Key]
	if !ok || cur.owner.Token != l.Owner.Token || !now.Before(cur.expires) {
		return store.Lease{}, fmt.Errorf("memstore: renew %q for %s: %w", l.Key.String(), l.Owner, store.ErrLeaseLost)
	}
	cur.expires = now.Add(ttl)
	sh.leases[l.Key] = cur
	sh.leaseChanged(s, l.Key, cur.expires)
	return store.Lease{Key: l.Key, Owner: cur.owner, ExpiresAt: cur.expires}, nil
}

// Release gives up l if its token still holds the lease; otherwise it does nothing.
func (s *Store) Release(ctx context.Context, l store.Lease) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	sh := s.shard(l.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cur, ok := sh.leases[l.Key]; ok && cur.owner.Token == l.Owner.Token {
		delete(sh.leases, l.Key)
		sh.notify(l.Key)
	}
	return nil
}

// Leases lists the unexpired leases of the namespace.
func (s *Store) Leases(ctx context.Context, namespace string) iter.Seq2[store.Lease, error] {
	return func(yield func(store.Lease, error) bool) {
		if err := s.check(ctx); err != nil {
			yield(store.Lease{}, err)
			return
		}
		now := s.clock()
		var batch []store.Lease
		for i := range s.shards {
			sh := &s.shards[i]
			batch = batch[:0]
			sh.mu.RLock()
			for k, l := range sh.leases {
				if k.Namespace == namespace && now.Before(l.expires) {
					batch = append(batch, store.Lease{Key: k, Owner: l.owner, ExpiresAt: l.expires})
				}
			}
			sh.mu.RUnlock()
			for _, l := range batch {
				if !yield(l, nil) {
					return
				}
			}
		}
	}
}

// ReleaseAll removes every lease of the namespace and returns how many of them had
// not expired yet. It also drops the expired leases of every namespace.
func (s *Store) ReleaseAll(ctx context.Context, namespace string) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	now := s.clock()
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, l := range sh.leases {
			live := now.Before(l.expires)
			if k.Namespace == namespace {
				if live {
					n++
				}
				delete(sh.leases, k)
				sh.notify(k)
			} else if !live {
				delete(sh.leases, k) // garbage: nobody can renew it any more
				sh.notify(k)
			}
		}
		sh.mu.Unlock()
	}
	return n, nil
}

// ---- wake-ups ----

// watchSet is the watchers of one key, and a timer that wakes them when the key's
// lease expires.
type watchSet struct {
	subs  map[*watcher]struct{}
	timer *time.Timer
}

type watcher struct{ ch chan struct{} }

// notifyAll wakes every watcher of the set without blocking: a watcher that has not
// read its last wake-up keeps that one pending.
func (ws *watchSet) notifyAll() {
	for w := range ws.subs {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}

func (ws *watchSet) stopTimer() {
	if ws.timer != nil {
		ws.timer.Stop()
	}
}

// notify wakes the watchers of k. The caller holds sh.mu for writing.
func (sh *shard) notify(k store.Key) {
	if len(sh.watch) == 0 { // the common case: nobody is waiting in this shard
		return
	}
	if ws := sh.watch[k]; ws != nil {
		ws.notifyAll()
	}
}

// leaseChanged arms the expiry timer of k's watchers, if any, for a lease that now
// expires at exp. The caller holds sh.mu for writing.
func (sh *shard) leaseChanged(s *Store, k store.Key, exp time.Time) {
	if len(sh.watch) == 0 {
		return
	}
	if ws := sh.watch[k]; ws != nil {
		sh.armTimer(s, k, ws, exp)
	}
}

// injectedClockPoll is how often a watched lease is checked against an injected
// clock, which a real-time timer cannot follow.
const injectedClockPoll = 20 * time.Millisecond

// timerDelay is how long to wait, in real time, before checking whether a lease with
// d left by the store's clock has expired.
func (s *Store) timerDelay(d time.Duration) time.Duration {
	if s.injectedClock {
		return min(max(d, time.Millisecond), injectedClockPoll)
	}
	return max(d, 0)
}

// armTimer makes ws's timer fire when a lease expiring at exp has expired. The timer
// runs on real time; its callback re-checks the store's clock and waits again if the
// lease has not expired by it (renewed, or an injected clock), so a wake-up is never
// early. With an injected clock it polls that clock every injectedClockPoll.
// The caller holds sh.mu for writing.
func (sh *shard) armTimer(s *Store, k store.Key, ws *watchSet, exp time.Time) {
	d := s.timerDelay(exp.Sub(s.clock()))
	if ws.timer == nil {
		ws.timer = time.AfterFunc(d, func() { sh.leaseTimer(s, k, ws) })
		return
	}
	ws.timer.Reset(d)
}

// leaseTimer runs when a watched lease should have expired.
func (sh *shard) leaseTimer(s *Store, k store.Key, ws *watchSet) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.watch[k] != ws {
		return // every watcher left meanwhile
	}
	if l, ok := sh.leases[k]; ok {
		if now := s.clock(); now.Before(l.expires) {
			// Renewed, or an injected clock that is behind: wait for the new expiry.
			ws.timer.Reset(s.timerDelay(l.expires.Sub(now)))
			return
		}
		delete(sh.leases, k)
	}
	ws.notifyAll()
}

// Watch returns a channel that receives a value whenever the entry or the lease of k
// may have changed: Set, SetLive, Delete, Clear, DeleteBefore, eviction, Release,
// ReleaseAll, or the lease expiring. It never closes: stop it, or cancel ctx, to
// unregister. Sends never block; a slow reader sees one pending value.
func (s *Store) Watch(ctx context.Context, k store.Key) (<-chan struct{}, func(), error) {
	if err := s.check(ctx); err != nil {
		return nil, nil, err
	}
	w := &watcher{ch: make(chan struct{}, 1)}
	sh := s.shard(k)
	sh.mu.Lock()
	ws := sh.watch[k]
	if ws == nil {
		ws = &watchSet{subs: make(map[*watcher]struct{})}
		sh.watch[k] = ws
	}
	ws.subs[w] = struct{}{}
	if l, ok := sh.leases[k]; ok && ws.timer == nil {
		sh.armTimer(s, k, ws, l.expires)
	}
	sh.mu.Unlock()

	unregister := sync.OnceFunc(func() {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		delete(ws.subs, w)
		if len(ws.subs) == 0 {
			ws.stopTimer()
			if sh.watch[k] == ws {
				delete(sh.watch, k)
			}
		}
	})
	// AfterFunc starts no goroutine for the usual context types; stop undoes it.
	stopAfter := context.AfterFunc(ctx, unregister)
	return w.ch, func() { stopAfter(); unregister() }, nil
}
