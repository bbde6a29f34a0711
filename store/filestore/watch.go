package filestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

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
// watch limits are reached, or the platform has no notifications), Watch returns an
// error matching errors.ErrUnsupported and the caller polls, with the backoff cachier
// owns.
//
// A watch is on a directory, so it ends when the directory is removed (rm -rf of the
// root). Its waiters are woken then, since their files went with it, and the directory
// is watched again as soon as it exists again: at once if it already does when the
// removal is reported, else when the store re-creates or reopens its root (see
// recoverRoot), which also re-arms every other watch, since a root replaced by
// another directory leaves the old watches on the old one. Changes made while a
// directory was not watched are not reported one by one: its waiters are woken once
// more when the watch is back. Lease expiry changes no file and is not notified: a waiter knows the holder's
// expiry and wakes itself.

// watchState is the Store's shared watcher.
type watchState struct {
	mu     sync.Mutex
	w      *fsnotify.Watcher
	failed bool // creating the watcher failed: Watch is unsupported
	closed bool
	dirs   map[string]*dirWatch
}

// dirWatch is one watched fan-out directory and its waiters, by entry name.
type dirWatch struct {
	ns, rel string // the namespace and the directory relative to the root, to re-create it
	armed   bool   // the watcher watches the directory now
	refs    int
	subs    map[string]map[*waiter]struct{}
}

func (dw *dirWatch) wakeAll() {
	for _, set := range dw.subs {
		for w := range set {
			w.wake()
		}
	}
}

// waiter is one Watch call.
type waiter struct{ ch chan struct{} }

func (w *waiter) wake() { store.Wake(w.ch) }

var _ store.Notifier = (*Store)(nil)

// Watch returns a channel that receives a value whenever the file of k may have
// changed, until stop is called or ctx is done (store.Notifier). The channel is never
// closed.
func (s *Store) Watch(ctx context.Context, k store.Key) (<-chan struct{}, func(), error) {
	if s.forcePoll {
		return nil, nil, fmt.Errorf("filestore: watch %s: %w (notifications off)", k, errors.ErrUnsupported)
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
	} else if !st.IsDir() {
		return nil, nil, fmt.Errorf("filestore: watch %s: %s: %w", k, s.abs(dir), errNotDir)
	}
	// The directory was just found to be a real one beneath the root; fsnotify watches
	// it by path. Were it swapped for a symlink right now, the watch would only see
	// another directory's events: waiters would wake for nothing, and what they then
	// read goes through the store's root like every other read.
	w := &waiter{ch: make(chan struct{}, 1)}
	cleanup, err := s.watch.add(s, k.Namespace, dir, name, w)
	if errors.Is(err, errClosed) {
		return nil, nil, err
	}
	if err != nil {
		s.log.Info("filestore: file notifications unavailable; waiters poll", "dir", dir, "err", err)
		return nil, nil, fmt.Errorf("filestore: watch %s: %w (%w)", k, errors.ErrUnsupported, err)
	}
	var once sync.Once
	release := func() { once.Do(cleanup) }
	stopCtx := context.AfterFunc(ctx, release)
	return w.ch, func() { stopCtx(); release() }, nil
}

// add registers w for the entry name in the directory rel (of namespace ns) on the
// shared watcher, creating the watcher and the directory watch as needed, and returns
// the function that undoes it.
func (ws *watchState) add(s *Store, ns, rel, name string, w *waiter) (func(), error) {
	dir := s.abs(rel)
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
		dw = &dirWatch{ns: ns, rel: rel, armed: true, subs: make(map[string]map[*waiter]struct{})}
		ws.dirs[dir] = dw
	}
	if !dw.armed && ws.w.Add(dir) == nil { // lost with the directory, which is back
		dw.armed = true
		dw.wakeAll()
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
	for {
		select {
		case ev, ok := <-fw.Events:
			if !ok {
				return
			}
			if ev.Op&ops == 0 {
				continue
			}
			if ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 && ws.lost(ev.Name) {
				continue
			}
			dir, entry := filepath.Dir(ev.Name), filepath.Base(ev.Name)
			if !isEntryName(entry) {
				continue
			}
			ws.mu.Lock()
			if dw := ws.dirs[dir]; dw != nil {
				for w := range dw.subs[entry] {
					w.wake()
				}
			}
			ws.mu.Unlock()
		case err, ok := <-fw.Errors:
			if !ok {
				return
			}
			// Lost events (queue overflow): wake everyone, since anything may have
			// changed.
			s.log.Warn("filestore: file notifications failed; waking every waiter", "err", err)
			ws.mu.Lock()
			for _, dw := range ws.dirs {
				dw.wakeAll()
			}
			ws.mu.Unlock()
		}
	}
}

// lost handles the removal (or move) of path, and reports whether path is a watched
// directory: its watch has ended, so its waiters are woken, and it is watched again at
// once if the directory is already back.
func (ws *watchState) lost(path string) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	dw := ws.dirs[path]
	if dw == nil {
		return false
	}
	// A moved directory is still watched where it went: stop that (fsnotify has
	// already dropped the watch of a removed one).
	_ = ws.w.Remove(path)
	dw.armed = ws.w.Add(path) == nil
	dw.wakeAll()
	return true
}

// rearm watches every watched directory anew, under the store's current root,
// re-creating the directories that are missing, and wakes every waiter: changes made
// while the old root was gone or in place were not all reported. recoverRoot calls
// it after it swapped in a new root. A directory that cannot be watched is tried again
// at the next rearm; its waiters rely on their own polling meanwhile.
func (ws *watchState) rearm(s *Store) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed || ws.w == nil {
		return
	}
	for dir, dw := range ws.dirs {
		_ = ws.w.Remove(dir) // it may follow a directory that is no longer the root's
		dw.armed = false
		if err := s.ensureDirs(dw.ns, dw.rel); err != nil {
			s.log.Warn("filestore: cannot re-create a watched directory", "dir", dir, "err", err)
		} else if err := ws.w.Add(dir); err != nil {
			s.log.Warn("filestore: cannot watch a re-created directory", "dir", dir, "err", err)
		} else {
			dw.armed = true
		}
		dw.wakeAll()
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
	if ws.w != nil {
		return ws.w.Close()
	}
	return nil
}
