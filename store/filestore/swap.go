package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/cachier-go/cachier/store"
)

// Swap
//
// The store is a store.Swapper, and package store keeps calculation leases over it as
// records in namespaces of their own. Swap is a read-compare-write of one file done
// while holding an exclusive flock on its fan-out directory's ".lock" file, so two
// processes can never both see the same record and both replace it (two takers of one
// expired lease). The lock is held only for that short critical section, and the
// kernel drops a flock when the process holding it dies, so a SIGKILL cannot leave it
// held. One lock per fan-out directory (not per key) keeps the number of lock files
// bounded (256 per namespace), and they are never removed, because removing a lock
// file while another process waits on it would let two processes hold "the" lock.
//
// The lock file is opened afresh for every operation: flock belongs to the open file
// description, so two goroutines of one process sharing a descriptor would not exclude
// each other.

var _ store.Swapper = (*Store)(nil)

// Swap replaces the entry of k by next if its value is old (old nil: if there is none;
// next nil: delete it), under the fan-out directory's lock. A damaged file counts as
// none, so that a torn or foreign file can never block a key.
func (s *Store) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	dir, name := s.paths(k)
	swapped := false
	err := s.withLock(ctx, k.Namespace, dir, func() error {
		cur, err := s.Get(ctx, k)
		present := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if present != (old != nil) || (present && !bytes.Equal(cur.Value, old)) {
			return nil
		}
		if next == nil {
			if err := s.remove(dir, name); err != nil && !isNotExist(err) {
				return err
			}
		} else if err := s.writeFile(dir, name, encodeRecord(next.StoredAt, next.ExpiresAt, k.ID, next.Value)); err != nil {
			return err
		}
		swapped = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("filestore: swap %s: %w", k, err)
	}
	return swapped, nil
}

// withLock runs fn while holding the fan-out directory's lock, creating the
// directories first if needed. It waits for the lock politely, honouring ctx.
func (s *Store) withLock(ctx context.Context, namespace, dir string, fn func() error) error {
	path := func() string { return s.abs(dir + "/" + lockName) } // for errors only
	l, err := s.openLock(dir)
	if err != nil && isNotExist(err) {
		if err := s.ensureDirsRecover(namespace, dir); err != nil {
			return err
		}
		l, err = s.openLock(dir)
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: path(), Err: err}
	}
	defer l.close() // closing the file releases the lock too
	if err := lock(ctx, l.fd); err != nil {
		return &fs.PathError{Op: "lock", Path: path(), Err: err}
	}
	defer unlock(l.fd)
	return fn()
}

// lockFile is an open lock file: an *os.File reached by the walk, or on Linux a bare
// descriptor that openat2 opened (no *os.File, no poller registration).
type lockFile struct {
	f  *os.File // nil for a bare descriptor
	fd uintptr
}

func (l lockFile) close() {
	if l.f != nil {
		l.f.Close()
	} else {
		closeFD(l.fd)
	}
}

// openLock opens (creating it) the lock file of the fan-out directory dir, refusing
// a symlink anywhere on its path.
func (s *Store) openLock(dir string) (lockFile, error) {
	rd, err := s.rootDir()
	if err != nil {
		return lockFile{}, err
	}
	if fd, err, ok := rd.fast.openLock(dir, lockName); ok {
		return lockFile{fd: fd}, err
	}
	var f *os.File
	err = s.inDir(dir, func(d *os.Root) error {
		f, err = openFile(d, lockName, os.O_RDWR|os.O_CREATE)
		return err
	})
	if err != nil {
		return lockFile{}, err
	}
	return lockFile{f: f, fd: f.Fd()}, nil
}

// lock takes an exclusive lock on f. It tries without blocking and then retries with
// a short backoff, so that a cancelled ctx is honoured even if the holder is stopped.
func lock(ctx context.Context, fd uintptr) error {
	wait := 20 * time.Microsecond
	for {
		busy, err := tryLock(fd)
		if err != nil || !busy {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Millisecond)
	}
}
