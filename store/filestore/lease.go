package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"time"

	unix "github.com/cachier-go/cachier/store/filestore/internal/fsys"

	"github.com/cachier-go/cachier/store"
)

// Leases
//
// A lease is the file "<entry>.lease" beside its entry, holding the owner and the
// expiry in the same checksummed record format as entries. Every change to a lease file
// (acquire, take over, renew, release, release all) is a read-check-write done while
// holding an exclusive flock on the fan-out directory's ".lock" file, so two processes
// can never both see "free" and both write. The lock is held only for that short
// critical section, never while a value is computed, and the kernel drops a flock when
// the process holding it dies, so a SIGKILL cannot leave it held; a dead holder's lease
// file simply blocks others until its expiry, as the contract wants.
//
// Why not O_EXCL alone? Creating the lease file with O_EXCL is atomic, but taking over
// an expired lease is not: two takers could both read "expired", and the second
// rename would silently replace the first one's fresh lease. Renew has the same
// read-then-write shape. A lock around the read-check-write closes both races with one
// mechanism. One lock per fan-out directory (not per key) keeps the number of lock files
// bounded (256 per namespace) and they are never removed, because removing a lock file
// while another process waits on it would let two processes hold "the" lock at once.
//
// The lock file is opened afresh for every operation: flock belongs to the open file
// description, so two goroutines of one process sharing a descriptor would not exclude
// each other.

// withLock runs fn while holding the fan-out directory's lock, creating the
// directories first if needed. It waits for the lock politely, honouring ctx.
func (s *Store) withLock(ctx context.Context, namespace, dir string, fn func() error) error {
	rel := dir + "/" + lockName
	path := s.abs(rel)
	open := func() (int, error) { return s.openFile(rel, unix.O_RDWR|unix.O_CREAT, 0o600) }
	fd, err := open()
	if err != nil && isNotExist(err) {
		if err := s.ensureDirs(namespace, dir); err != nil {
			return err
		}
		fd, err = open()
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd) // closing the descriptor releases the lock too
	if err := flock(ctx, fd); err != nil {
		return &fs.PathError{Op: "flock", Path: path, Err: err}
	}
	defer unix.Flock(fd, unix.LOCK_UN)
	return fn()
}

// flock takes an exclusive lock on fd. It tries without blocking and then retries with
// a short backoff, so that a cancelled ctx is honoured even if the holder is stopped.
func flock(ctx context.Context, fd int) error {
	wait := 20 * time.Microsecond
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
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

// readLease reads the lease file rel beneath the root. ok is false if there is none; a
// damaged file (or a symlink on its path) is logged and counts as none, so that a torn
// or foreign file can never block a key.
func (s *Store) readLease(rel, namespace string) (l store.Lease, ok bool, err error) {
	rootfd, err := s.root.acquire()
	if err != nil {
		return l, false, err
	}
	defer s.root.release()
	return s.readLeaseAt(rootfd, s.root.path, rel, namespace)
}

// readLeaseAt is readLease for the lease file rel beneath dfd, whose path is dirPath.
func (s *Store) readLeaseAt(dfd int, dirPath, rel, namespace string) (l store.Lease, ok bool, err error) {
	path := dirPath + "/" + rel
	data, err := readRecordBeneath(dfd, dirPath, rel)
	switch {
	case err == nil:
	case isNotExist(err):
		return l, false, nil
	case isSymlinkErr(err), errors.Is(err, errNotRegular), errors.Is(err, errFormat):
		s.log.Warn("filestore: ignoring corrupt lease file", "path", path, "err", err)
		return l, false, nil
	default:
		return l, false, err
	}
	l, err = decodeLease(data, namespace)
	if err != nil {
		s.log.Warn("filestore: ignoring corrupt lease file", "path", path, "err", err)
		return l, false, nil
	}
	return l, true, nil
}

// leaseArgs checks the arguments shared by Acquire and Renew.
func leaseArgs(ctx context.Context, k store.Key, o store.Owner, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.Validate(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("filestore: lease on %s: ttl %v is not positive", k, ttl)
	}
	if o.Token == "" {
		return fmt.Errorf("filestore: lease on %s: owner has no token", k)
	}
	return nil
}

// Acquire takes the lease on k for ttl on behalf of o. An unexpired lease of another
// owner fails with a *store.HeldError; an expired one is taken over; o's own lease is
// extended.
func (s *Store) Acquire(ctx context.Context, k store.Key, o store.Owner, ttl time.Duration) (store.Lease, error) {
	if err := leaseArgs(ctx, k, o, ttl); err != nil {
		return store.Lease{}, err
	}
	dir, name := s.paths(k)
	path := dir + "/" + name + leaseSuffix
	lease := name + leaseSuffix
	var out store.Lease
	err := s.withLock(ctx, k.Namespace, dir, func() error {
		now := s.now()
		cur, ok, err := s.readLease(path, k.Namespace)
		if err != nil {
			return err
		}
		if ok && cur.Owner.Token != o.Token && now.Before(cur.ExpiresAt) {
			return &store.HeldError{Holder: cur}
		}
		l := store.Lease{Key: k, Owner: o, ExpiresAt: now.Add(ttl)}
		if err := s.writeFile(dir, lease, encodeRecord(magicLease, l.ExpiresAt, k.ID, encodeOwner(o))); err != nil {
			return err
		}
		out = l
		return nil
	})
	if err != nil {
		var held *store.HeldError
		if errors.As(err, &held) {
			return store.Lease{}, err
		}
		return store.Lease{}, fmt.Errorf("filestore: acquire %s: %w", k, err)
	}
	return out, nil
}

// Renew extends l to ttl from now if it is still l.Owner's and unexpired; otherwise it
// fails with an error matching store.ErrLeaseLost. An expired lease counts as lost
// even if nobody has taken it over yet, as it would in a store with server-side
// expiry, so that every store behaves alike.
func (s *Store) Renew(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error) {
	k := l.Key
	if err := leaseArgs(ctx, k, l.Owner, ttl); err != nil {
		return store.Lease{}, err
	}
	dir, name := s.paths(k)
	path := dir + "/" + name + leaseSuffix
	lease := name + leaseSuffix
	var out store.Lease
	err := s.withLock(ctx, k.Namespace, dir, func() error {
		now := s.now()
		cur, ok, err := s.readLease(path, k.Namespace)
		if err != nil {
			return err
		}
		if !ok || cur.Owner.Token != l.Owner.Token || !now.Before(cur.ExpiresAt) {
			return store.ErrLeaseLost
		}
		n := store.Lease{Key: k, Owner: cur.Owner, ExpiresAt: now.Add(ttl)}
		if err := s.writeFile(dir, lease, encodeRecord(magicLease, n.ExpiresAt, k.ID, encodeOwner(n.Owner))); err != nil {
			return err
		}
		out = n
		return nil
	})
	if err != nil {
		return store.Lease{}, fmt.Errorf("filestore: renew %s: %w", k, err)
	}
	return out, nil
}

// Release removes the lease if it is still l.Owner's; otherwise it does nothing.
func (s *Store) Release(ctx context.Context, l store.Lease) error {
	k := l.Key
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.Validate(); err != nil {
		return err
	}
	dir, name := s.paths(k)
	path := dir + "/" + name + leaseSuffix
	// No lease file: nothing of l.Owner's to release, and no need to create the
	// directories for a lock.
	if _, err := s.lstat(path); isNotExist(err) {
		return nil
	}
	err := s.withLock(ctx, k.Namespace, dir, func() error {
		cur, ok, err := s.readLease(path, k.Namespace)
		if err != nil || !ok || cur.Owner.Token != l.Owner.Token {
			return err
		}
		return s.inDir(dir, false, func(dfd int) error {
			if err := unlinkAt(dfd, name+leaseSuffix); err != nil && !isNotExist(err) {
				return &fs.PathError{Op: "unlink", Path: s.abs(path), Err: err}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("filestore: release %s: %w", k, err)
	}
	return nil
}

// Leases lists the unexpired leases of the namespace, by the Clock.
func (s *Store) Leases(ctx context.Context, namespace string) iter.Seq2[store.Lease, error] {
	return listFiles(ctx, s, namespace, "leases", isLeaseName, func(dfd int, dir, n string) (store.Lease, bool, error) {
		l, ok, err := s.readLeaseAt(dfd, s.abs(dir), n, namespace)
		if err != nil || !ok || !s.now().Before(l.ExpiresAt) || entryName(l.Key.ID)+leaseSuffix != n {
			return store.Lease{}, false, err
		}
		return l, true, nil
	})
}

// ReleaseAll removes every lease file of the namespace, whoever holds it and whether or
// not it has expired, and returns how many it removed.
func (s *Store) ReleaseAll(ctx context.Context, namespace string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := store.ValidateNamespace(namespace); err != nil {
		return 0, err
	}
	dirs, err := s.fanouts(namespace)
	if err != nil {
		return 0, fmt.Errorf("filestore: release all in %q: %w", namespace, err)
	}
	removed := 0
	for _, dir := range dirs {
		err := s.withLock(ctx, namespace, dir, func() error {
			return s.inFanout(dir, func(dfd int, names []string) error {
				for _, n := range names {
					if !isLeaseName(n) {
						continue
					}
					if err := unlinkAt(dfd, n); err == nil {
						removed++
					} else if !isNotExist(err) {
						return &fs.PathError{Op: "unlink", Path: s.abs(dir + "/" + n), Err: err}
					}
				}
				return nil
			})
		})
		if err != nil {
			return removed, fmt.Errorf("filestore: release all in %q: %w", namespace, err)
		}
	}
	return removed, nil
}
