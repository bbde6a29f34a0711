package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Wake sends on c without blocking: a Watch channel has room for one value, and one
// pending wake-up is enough.
func Wake(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// watcher is one Watch: a channel with room for one pending wake-up.
type watcher struct{ ch chan struct{} }

func (w *watcher) wake() { Wake(w.ch) }

// changed wakes the watchers of k in this process. It costs one atomic load when
// nobody watches.
func (p *portable) changed(k Key) {
	if p.watchers.Load() == 0 {
		return
	}
	p.watchMu.Lock()
	for w := range p.watch[k] {
		w.wake()
	}
	p.watchMu.Unlock()
}

// changedNS wakes the watchers of every key of ns in this process.
func (p *portable) changedNS(ns string) {
	if p.watchers.Load() == 0 {
		return
	}
	p.watchMu.Lock()
	for k, ws := range p.watch {
		if k.Namespace == ns {
			for w := range ws {
				w.wake()
			}
		}
	}
	p.watchMu.Unlock()
}

// Watch implements Notifier. Changes made through this Store wake its watchers
// directly; changes made by other processes arrive through the driver's [Notifier],
// which is watched on the entry and, when leases are records, on the lease record.
// A driver that is neither a Notifier nor [ProcessLocal] gives no wake-ups: Watch
// returns an error matching errors.ErrUnsupported and the caller polls. Lease expiry is
// never notified: the waiter knows the holder's expiry and wakes itself.
func (p *portable) Watch(ctx context.Context, k Key) (<-chan struct{}, func(), error) {
	if err := p.check(ctx, k); err != nil {
		return nil, nil, err
	}
	if p.notifier == nil && !p.local {
		return nil, nil, fmt.Errorf("store: Watch: %w (the driver does not implement store.Notifier)", errors.ErrUnsupported)
	}
	w := &watcher{ch: make(chan struct{}, 1)}
	var stops []func()
	done := make(chan struct{})
	forward := func(wk Key) error {
		if p.notifier == nil {
			return nil
		}
		ch, stop, err := p.notifier.Watch(ctx, wk)
		if err != nil {
			return err
		}
		stops = append(stops, stop)
		go func() {
			for {
				select {
				case <-ch:
					w.wake()
				case <-done:
					return
				}
			}
		}()
		return nil
	}
	var once sync.Once
	stopAll := func() {
		once.Do(func() {
			close(done)
			for _, s := range stops {
				s()
			}
			p.watchMu.Lock()
			delete(p.watch[k], w)
			if len(p.watch[k]) == 0 {
				delete(p.watch, k)
			}
			p.watchMu.Unlock()
			p.watchers.Add(-1)
		})
	}
	p.watchMu.Lock()
	if p.watch == nil {
		p.watch = map[Key]map[*watcher]struct{}{}
	}
	if p.watch[k] == nil {
		p.watch[k] = map[*watcher]struct{}{}
	}
	p.watch[k][w] = struct{}{}
	p.watchMu.Unlock()
	p.watchers.Add(1)

	err := forward(k)
	if err == nil && p.swapper != nil {
		err = forward(leaseKey(k))
	}
	if err != nil {
		stopAll()
		return nil, nil, err
	}
	stopCtx := context.AfterFunc(ctx, stopAll)
	return w.ch, func() { stopCtx(); stopAll() }, nil
}

var _ NamespaceNotifier = (*portable)(nil)

// WatchNamespace implements NamespaceNotifier with the driver's, which only it can
// give: the changes made by every process, this one included, arrive through the
// driver. Counters ([InternalPrefix]) are watched only when they are records, since
// a driver's own counters ([Versioner]) need not be.
func (p *portable) WatchNamespace(ctx context.Context, ns string) (<-chan struct{}, func(), error) {
	if ns != InternalPrefix {
		if err := p.checkNS(ctx, ns); err != nil {
			return nil, nil, err
		}
	} else if err := p.checkNS(ctx, "counters"); err != nil {
		return nil, nil, err
	}
	if p.nsWatch == nil || (ns == InternalPrefix && p.versioner != nil) {
		return nil, nil, fmt.Errorf("store: WatchNamespace: %w", errors.ErrUnsupported)
	}
	return p.nsWatch.WatchNamespace(ctx, ns)
}
