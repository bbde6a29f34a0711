package filestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	unix "github.com/cachier-go/cachier/store/filestore/internal/fsys"
	"github.com/fsnotify/fsnotify"

	"github.com/cachier-go/cachier/store"
)

// Notifications
//
// Watch uses one fsnotify watcher per Store (one inotify instance on Linux, of which a
// user has only 128 by default) and watches fan-out directories, not files: an entry
// is replaced by rename, which a watch on the old file would not follow, and its lease
// file comes and goes. Directory watches are reference counted, so a thousand waiters
// on one directory cost one watch, and the last stop removes it.
//
// If the watcher cannot be created or a directory cannot be watched (the instance or
// watch limits are reached, or the platform has no notifications), that waiter polls
// the entry and lease files instead (existence, inode, size and times), starting at
// 1 ms and backing off to Options.PollInterval, resetting after each change.
//
// A lease expiring changes no file, so each waiter also sets a timer for the expiry of
// the lease it can see, and re-arms it whenever the lease file changes.

// errClosed reports a Watch on a closed Store.
var errClosed = errors.New("filestore: store is closed")

// watchState is the Store's shared watcher.
type watchState struct {
	mu     sync.Mutex
	w      *fsnotify.Watcher
	failed bool // creating the watcher failed: every waiter polls
	closed bool
	done   chan struct{} // closed by close, stops polling goroutines
	dirs   map[string]*dirWatch
}

// dirWatch is one watched fan-out directory and its waiters, by entry name.
type dirWatch struct {
	refs int
	subs map[string]map[*waiter]struct{}
}

// waiter is one Watch call.
type waiter struct {
	ch chan struct{}

	mu      sync.Mutex
	timer   *time.Timer // fires at the expiry of the lease last seen
	stopped bool
}

// wake sends without blocking; a pending value is enough.
func (w *waiter) wake() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// armExpiry sets w's timer to the expiry of the lease at leasePath, if there is an
// unexpired one.
func (s *Store) armExpiry(w *waiter, leasePath, namespace string) {
	l, ok, err := s.readLease(leasePath, namespace)
	if err != nil || !ok {
		return
	}
	d := l.ExpiresAt.Sub(s.now())
	if d <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if w.timer != nil {
		w.timer.Stop()
	}
	// A millisecond late, so that the waiter that wakes sees the lease expired.
	w.timer = time.AfterFunc(d+time.Millisecond, w.wake)
}

// Watch returns a channel that receives a value whenever the entry or the lease of k
// may have changed, until stop is called or ctx is done (store.Notifier). The
// channel is never closed.
func (s *Store) Watch(ctx context.Context, k store.Key) (<-chan struct{}, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := k.Validate(); err != nil {
		return nil, nil, err
	}
	dir, name := s.paths(k)
	st, err := s.lstat(dir)
	if err != nil {
		if errors.Is(err, errClosed) {
			return nil, nil, err
		}
		if err := s.ensureDirs(k.Namespace, dir); err != nil {
			return nil, nil, fmt.Errorf("filestore: watch %s: %w", k, err)
		}
	} else if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, nil, fmt.Errorf("filestore: watch %s: %s: %w", k, s.abs(dir), errNotDir)
	}
	// The directory was just found to be a real one beneath the root; fsnotify watches
	// it by path. Were it swapped for a symlink right now, the watch would only see
	// another directory's events: waiters would wake for nothing, and what they then
	// read goes through openBeneath like every other read.
	entryPath, leasePath := dir+"/"+name, dir+"/"+name+leaseSuffix
	w := &waiter{ch: make(chan struct{}, 1)}

	var cleanup func()
	if !s.forcePoll {
		var err error
		cleanup, err = s.watch.add(s, s.abs(dir), name, w)
		if errors.Is(err, errClosed) {
			return nil, nil, err
		}
		if err != nil {
			s.log.Info("filestore: file notifications unavailable; polling", "dir", dir, "err", err)
		}
	}
	if cleanup == nil {
		var err error
		cleanup, err = s.startPolling(w, entryPath, leasePath, k.Namespace)
		if err != nil {
			return nil, nil, err
		}
	}
	s.armExpiry(w, leasePath, k.Namespace)

	var once sync.Once
	release := func() {
		once.Do(func() {
			w.mu.Lock()
			w.stopped = true
			if w.timer != nil {
				w.timer.Stop()
			}
			w.mu.Unlock()
			cleanup()
		})
	}
	stopCtx := context.AfterFunc(ctx, release)
	return w.ch, func() { stopCtx(); release() }, nil
}

// add registers w for the entry name in dir on the shared watcher, creating the
// watcher and the directory watch as needed, and returns the function that undoes it.
func (ws *watchState) add(s *Store, dir, name string, w *waiter) (func(), error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil, errClosed
	}
	if ws.failed {
		return nil, errors.New("fsnotify watcher unavailable")
	}
	if ws.w == nil {
		fw, err := fsnotify.NewWatcher()
		if err != nil {
			ws.failed = true
			return nil, err
		}
		ws.w = fw
		ws.dirs = make(map[string]*dirWatch)
		go ws.dispatch(s, fw)
	}
	dw := ws.dirs[dir]
	if dw == nil {
		if err := ws.w.Add(dir); err != nil {
			return nil, err
		}
		dw = &dirWatch{subs: make(map[string]map[*waiter]struct{})}
		ws.dirs[dir] = dw
	}
	dw.refs++
	if dw.subs[name] == nil {
		dw.subs[name] = make(map[*waiter]struct{})
	}
	dw.subs[name][w] = struct{}{}
	return func() {
		ws.mu.Lock()
		defer ws.mu.Unlock()
		delete(dw.subs[name], w)
		if len(dw.subs[name]) == 0 {
			delete(dw.subs, name)
		}
		dw.refs--
		if dw.refs == 0 && ws.dirs[dir] == dw {
			delete(ws.dirs, dir)
			if !ws.closed {
				_ = ws.w.Remove(dir)
			}
		}
	}, nil
}

// dispatch delivers the watcher's events to the waiters of the entries they name.
func (ws *watchState) dispatch(s *Store, fw *fsnotify.Watcher) {
	const ops = fsnotify.Create | fsnotify.Write | fsnotify.Remove | fsnotify.Rename
	type rearm struct {
		w         *waiter
		leasePath string
	}
	for {
		select {
		case ev, ok := <-fw.Events:
			if !ok {
				return
			}
			if ev.Op&ops == 0 {
				continue
			}
			dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
			entry, isLease := strings.CutSuffix(base, leaseSuffix)
			if !isEntryName(entry) {
				continue
			}
			var again []rearm
			ws.mu.Lock()
			if dw := ws.dirs[dir]; dw != nil {
				for w := range dw.subs[entry] {
					w.wake()
					if isLease {
						again = append(again, rearm{w, ev.Name})
					}
				}
			}
			ws.mu.Unlock()
			// The namespace only labels the lease read here; the expiry is what counts.
			// The lease is read beneath the root, like every other file.
			for _, r := range again {
				s.armExpiry(r.w, strings.TrimPrefix(r.leasePath, s.root.path+"/"), "")
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return
			}
			// Lost events (queue overflow): wake everyone, since anything may have
			// changed.
			s.log.Warn("filestore: file notifications failed; waking every waiter", "err", err)
			ws.mu.Lock()
			for _, dw := range ws.dirs {
				for _, set := range dw.subs {
					for w := range set {
						w.wake()
					}
				}
			}
			ws.mu.Unlock()
		}
	}
}

// close stops the watcher. Waiters already registered stay registered until stopped,
// but receive nothing more.
func (ws *watchState) close() error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil
	}
	ws.closed = true
	if ws.done != nil {
		close(ws.done)
	}
	if ws.w != nil {
		return ws.w.Close()
	}
	return nil
}

// doneChan returns the channel closed by close.
func (ws *watchState) doneChan() (<-chan struct{}, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil, errClosed
	}
	if ws.done == nil {
		ws.done = make(chan struct{})
	}
	return ws.done, nil
}

// fileState is what polling compares: a rename shows as a new inode even when sizes
// and times are equal.
type fileState struct {
	exists      bool
	ino         uint64
	size, mtime int64
}

// statFile looks at rel beneath the root, following no symlink.
func (s *Store) statFile(rel string) fileState {
	st, err := s.lstat(rel)
	if err != nil {
		return fileState{}
	}
	return fileState{exists: true, ino: uint64(st.Ino), size: st.Size, mtime: time.Unix(st.Mtim.Unix()).UnixNano()}
}

// startPolling watches the entry and lease files (relative to the root) by polling, and returns the function
// that stops it. The first look happens before it returns, so no change after Watch
// returns is missed.
func (s *Store) startPolling(w *waiter, entryPath, leasePath, namespace string) (func(), error) {
	done, err := s.watch.doneChan()
	if err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	entry, lease := s.statFile(entryPath), s.statFile(leasePath)
	go func() {
		wait := time.Millisecond
		t := time.NewTimer(wait)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-done:
				return
			case <-t.C:
			}
			e, l := s.statFile(entryPath), s.statFile(leasePath)
			if e != entry || l != lease {
				w.wake()
				if l != lease {
					s.armExpiry(w, leasePath, namespace)
				}
				entry, lease = e, l
				wait = time.Millisecond
			} else {
				wait = min(2*wait, s.pollInterval)
			}
			t.Reset(wait)
		}
	}()
	return func() { close(stop) }, nil
}
