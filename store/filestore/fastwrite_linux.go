package filestore

import (
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The write path on Linux. A miss writes three files (the lease record, the entry,
// and the lease's removal), each under its fan-out directory, and the walk of
// root.go costs about eleven system calls to reach that directory and six more to
// open a temporary file as an *os.File (poller registration included): most of a
// miss went there. Here the directory is opened in one openat2 call that refuses
// symlinks and ".." in the kernel, as reads are, and every name in it is then
// created, renamed or removed with the *at calls on that descriptor, which act on
// the name itself: O_NOFOLLOW|O_EXCL for the temporary file, renameat and unlinkat,
// which never follow a link in the last component. The lock file is opened in one
// openat2 call with O_CREAT, which RESOLVE_NO_SYMLINKS makes refuse a link in its
// place too. Where openat2 is unusable, writes take the walk of root.go.

// openDir opens the directory rel beneath the root ("" is the root itself), refusing
// symlinks; ok is false when the caller must take the walk instead.
func (fr *fastRoot) openDir(rel string) (fd int, err error, ok bool) {
	if fr == nil || openat2Off.Load() {
		return -1, nil, false
	}
	if rel == "" {
		rel = "."
	}
	fd, err, ok = fr.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0, false)
	switch {
	case !ok:
		return -1, errClosed, true
	case errors.Is(err, unix.ENOSYS):
		openat2Off.Store(true)
		return -1, nil, false
	}
	return fd, err, true
}

// writeFile is Store.writeFile on a descriptor of dir: a temporary file created,
// written (and with fsync synced) and renamed over name, then (with fsync) the
// directory synced. sync counts each fsync. ok is false when the caller must take
// the walk instead.
func (fr *fastRoot) writeFile(dir, name string, data []byte, fsync bool, syncs *atomic.Int64) (err error, ok bool) {
	dfd, err, ok := fr.openDir(dir)
	if !ok || err != nil {
		return err, ok
	}
	defer unix.Close(dfd)
	fd, tmp, err := createTempAt(dfd)
	if err != nil {
		return err, true
	}
	err = writeAll(fd, data)
	if err == nil && fsync {
		syncs.Add(1)
		err = retryEINTR(func() error { return unix.Fsync(fd) })
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return err, true
	}
	if fsync {
		syncs.Add(1)
		return retryEINTR(func() error { return unix.Fsync(dfd) }), true
	}
	return nil, true
}

// remove removes the name in dir (a symlink itself, never what it points to). ok is
// false when the caller must take the walk instead.
func (fr *fastRoot) remove(dir, name string) (err error, ok bool) {
	dfd, err, ok := fr.openDir(dir)
	if !ok || err != nil {
		return err, ok
	}
	defer unix.Close(dfd)
	return unix.Unlinkat(dfd, name, 0), true
}

// openLock opens (creating it if missing) the regular file name in dir for locking,
// refusing a symlink anywhere on the path, the last component included. ok is false
// when the caller must take the walk instead.
func (fr *fastRoot) openLock(dir, name string) (fd uintptr, err error, ok bool) {
	if fr == nil || openat2Off.Load() {
		return 0, nil, false
	}
	rfd, err, ok := fr.openat2(joinRel(dir, name), unix.O_RDWR|unix.O_CREAT, 0o600, false)
	switch {
	case !ok:
		return 0, errClosed, true
	case errors.Is(err, unix.ENOSYS):
		openat2Off.Store(true)
		return 0, nil, false
	case err != nil:
		return 0, err, true
	}
	var st unix.Stat_t
	if err := unix.Fstat(rfd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(rfd)
		if err == nil {
			err = errNotRegular // a FIFO or a device where the lock file should be
		}
		return 0, err, true
	}
	return uintptr(rfd), nil, true
}

// closeFD closes a descriptor openLock returned.
func closeFD(fd uintptr) { unix.Close(int(fd)) }

// createTempAt creates a new, empty, private temporary file in the directory dfd, as
// createTemp does.
func createTempAt(dfd int) (fd int, name string, err error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	for range 100 {
		name = tmpPrefix + strconv.FormatUint(rand.Uint64(), 36)
		err = retryEINTR(func() (err error) {
			fd, err = unix.Openat(dfd, name, flags, 0o600)
			return err
		})
		if err != unix.EEXIST {
			break
		}
	}
	return fd, name, err
}

// writeAll writes all of data to fd.
func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		data = data[n:]
	}
	return nil
}

// retryEINTR calls fn until it is not interrupted by a signal.
func retryEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}
