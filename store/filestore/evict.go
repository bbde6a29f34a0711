package filestore

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/store"
)

// Bounded growth. With Options.MaxBytes or Options.MaxEntries set, the store evicts
// the least recently used entries, across every process that shares the directory:
//
//   - Recency is the entry file's modification time. The value's own StoredAt lives in
//     the file's header, so the mtime is free to mean "last used": Set stamps it, and a
//     Get that hits stamps it again, at most once per touchEvery per key and process,
//     with utimensat (no write of the file, and no atime, which noatime and relatime
//     mounts would not keep).
//   - A sweep stats every entry file (no reads), and when the store is over a cap it
//     unlinks the least recently used until it is below the low-water mark, a
//     twentieth under the caps, so that the next sweep is not due at once. Sweeps run
//     inside Set, in the process that wrote, once that process has written a twentieth
//     of a cap since its last sweep; the store can therefore exceed a cap by about a
//     twentieth per writing process, and by what other processes write while one
//     sweeps, until the next sweep. A process that finds another sweeping sweeps again
//     at its next Set.
//   - One process sweeps at a time: the sweeper holds an exclusive flock on the root's
//     .evict.lock, and a process that finds it held skips its sweep.
//   - Eviction is unlink, which is safe against readers and writers in other
//     processes: a reader that has the file open reads it whole, one that comes later
//     misses, and a writer's rename puts a new file in place. Before unlinking, the
//     sweeper stats the file again and leaves it if it was used or replaced since the
//     scan. Only entry files are evicted, never a lease, a counter or a namespace's
//     metadata.

// touchEvery is how often one process refreshes the recency of one hot key.
const touchEvery = time.Second

// evictLockName is the lock file of sweeps, in the root.
const evictLockName = ".evict.lock"

// caps is the eviction state of a Store with a cap; nil without one.
type caps struct {
	maxBytes   int64 // 0: no byte cap
	maxEntries int64 // 0: no entry cap

	written atomic.Int64 // bytes written by this process since its last sweep
	sets    atomic.Int64 // entries written by this process since its last sweep
	sweepMu sync.Mutex   // one sweep per process

	touched  sync.Map // entry path -> unix nanos of the last touch
	nTouched atomic.Int64

	sweeps  atomic.Int64 // sweeps run, for the tests
	evicted atomic.Int64 // entries evicted by this process
}

func newCaps(o Options) (*caps, error) {
	if o.MaxBytes < 0 || o.MaxEntries < 0 {
		return nil, fmt.Errorf("filestore: MaxBytes %d and MaxEntries %d must not be negative (zero means no cap)", o.MaxBytes, o.MaxEntries)
	}
	if o.MaxBytes == 0 && o.MaxEntries == 0 {
		return nil, nil
	}
	return &caps{maxBytes: o.MaxBytes, maxEntries: int64(o.MaxEntries)}, nil
}

// due reports whether this process has written enough since its last sweep.
func (c *caps) due() bool {
	return c.maxBytes > 0 && c.written.Load() >= max(c.maxBytes/20, 1) ||
		c.maxEntries > 0 && c.sets.Load() >= max(c.maxEntries/20, 1)
}

// lowWater returns the sizes a sweep evicts down to.
func (c *caps) lowWater() (bytes, entries int64) {
	bytes, entries = math.MaxInt64, math.MaxInt64
	if c.maxBytes > 0 {
		bytes = c.maxBytes - c.maxBytes/20
	}
	if c.maxEntries > 0 {
		entries = c.maxEntries - c.maxEntries/20
	}
	return bytes, entries
}

// Usage reports what the store's entries take on disk, as a sweep counts it: the
// number of entry files and their total size in bytes, across every namespace.
func (s *Store) Usage(ctx context.Context) (entries int, bytes int64, err error) {
	files, err := s.scanEntries(ctx)
	for _, f := range files {
		bytes += f.size
	}
	return len(files), bytes, err
}

// Limits returns the caps in force (Options.MaxEntries and Options.MaxBytes), each 0
// when there is none.
func (s *Store) Limits() (maxEntries int, maxBytes int64) {
	if s.caps == nil {
		return 0, 0
	}
	return int(s.caps.maxEntries), s.caps.maxBytes
}

// stamp sets the recency of the entry file name in dir (relative to the root) to the
// store's clock.
func (s *Store) stamp(dir, name string) {
	t := s.now()
	_ = s.inDir(dir, func(d *os.Root) error { return d.Chtimes(name, t, t) })
}

// touch records a hit on the entry file: its recency is stamped unless this process
// stamped it less than touchEvery ago.
func (s *Store) touch(dir, name string) {
	c := s.caps
	rel := dir + "/" + name
	now := s.now().UnixNano()
	if last, ok := c.touched.Load(rel); ok && now-last.(int64) < int64(touchEvery) && now >= last.(int64) {
		return
	}
	if c.nTouched.Add(1) > 1<<16 { // forget old touches rather than grow without bound
		c.touched.Clear()
		c.nTouched.Store(1)
	}
	c.touched.Store(rel, now)
	s.stamp(dir, name)
}

// afterSet stamps a new entry file and sweeps when this process has written enough.
func (s *Store) afterSet(dir, name string, size int) {
	c := s.caps
	s.stamp(dir, name)
	c.touched.Store(dir+"/"+name, s.now().UnixNano())
	c.written.Add(int64(size))
	c.sets.Add(1)
	if c.due() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.Sweep(ctx); err != nil {
			s.log.Warn("filestore: eviction sweep failed", "root", s.rootPath, "err", err)
		}
	}
}

// entryFile is one entry file found by a sweep.
type entryFile struct {
	dir, name string // dir relative to the root
	size      int64
	mtime     int64 // unix nanos: last use
}

// scanEntries stats every entry file of every namespace.
func (s *Store) scanEntries(ctx context.Context) ([]entryFile, error) {
	nss, err := s.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	var files []entryFile
	for _, ns := range nss {
		if strings.HasPrefix(ns, store.InternalPrefix) {
			continue // package store's leases and counters: never evicted
		}
		err := s.walk(ctx, ns, func(d *os.Root, dir, n string) error {
			if !isEntryName(n) {
				return nil // temporary files: never evicted
			}
			if fi, err := d.Lstat(n); err == nil && fi.Mode().IsRegular() { // else gone, or not ours
				files = append(files, entryFile{dir: dir, name: n, size: fi.Size(), mtime: fi.ModTime().UnixNano()})
			}
			return nil
		})
		if err != nil {
			return files, err
		}
	}
	return files, nil
}

// Sweep evicts the least recently used entries until the store is within its caps
// (below them by a twentieth), and returns how many it evicted. It does nothing
// without a cap, or while another process sweeps. Set calls it when it is due; call it
// yourself to shrink a store at once, for example after lowering a cap.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	c := s.caps
	if c == nil {
		return 0, nil
	}
	c.sweepMu.Lock()
	defer c.sweepMu.Unlock()
	lock, err := s.tryEvictLock()
	if err != nil || lock == nil {
		return 0, err
	}
	defer lock.Close() // releases the lock
	c.sweeps.Add(1)
	c.written.Store(0)
	c.sets.Store(0)

	files, err := s.scanEntries(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	count := int64(len(files))
	if (c.maxBytes == 0 || total <= c.maxBytes) && (c.maxEntries == 0 || count <= c.maxEntries) {
		return 0, nil
	}
	wantBytes, wantEntries := c.lowWater()
	slices.SortFunc(files, func(a, b entryFile) int { return cmpInt(a.mtime, b.mtime) })
	evicted := 0
	for _, f := range files {
		if total <= wantBytes && count <= wantEntries {
			break
		}
		if err := ctx.Err(); err != nil {
			return evicted, err
		}
		gone, err := s.evictIfUnused(f)
		if err != nil {
			return evicted, err
		}
		if gone {
			total -= f.size
			count--
			evicted++
		}
	}
	c.evicted.Add(int64(evicted))
	return evicted, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// evictIfUnused unlinks the entry file f unless it was used or replaced since the
// scan (its mtime or size changed), and reports whether it is gone.
func (s *Store) evictIfUnused(f entryFile) (bool, error) {
	gone := false
	err := s.inDir(f.dir, func(d *os.Root) error {
		fi, err := d.Lstat(f.name)
		if err == nil && (fi.ModTime().UnixNano() != f.mtime || fi.Size() != f.size) {
			return nil // used or replaced since the scan: keep it
		}
		if err == nil {
			err = d.Remove(f.name)
		}
		if err != nil && !isNotExist(err) {
			return err
		}
		gone = true
		return nil
	})
	if isNotExist(err) {
		return true, nil
	}
	return gone, err
}

// tryEvictLock takes the sweep lock without waiting: it returns the locked file, or
// nil if another process holds it.
func (s *Store) tryEvictLock() (*os.File, error) {
	var f *os.File
	err := s.inDir("", func(d *os.Root) (err error) {
		f, err = openFile(d, evictLockName, os.O_RDWR|os.O_CREATE)
		return err
	})
	busy := false
	if err == nil {
		if busy, err = tryLock(f.Fd()); err != nil || busy {
			f.Close()
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "lock", Path: s.abs(evictLockName), Err: err}
	}
	if busy {
		return nil, nil
	}
	return f, nil
}
