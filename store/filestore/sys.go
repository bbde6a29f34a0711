package filestore

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strconv"

	unix "github.com/cachier-go/cachier/store/filestore/internal/fsys"
)

// The hot paths (Get and Set) call the system directly instead of going through
// os.File: an entry is read with open, fstat, read and close and nothing else (no poller
// registration, no finalizer), which is what lets a hit cost about as much as the
// cheapest possible read of a small file. Every open resolves its path beneath the root
// and refuses symlinks in any component (see beneath.go).

// retryEINTR repeats a system call interrupted by a signal.
func retryEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// errNotRegular reports an entry path that is not a regular file.
var errNotRegular = errors.New("not a regular file")

// readRecord reads a whole record file rel beneath the root.
func (s *Store) readRecord(rel string) ([]byte, error) {
	r, rootfd, err := s.acquireRoot()
	if err != nil {
		return nil, err
	}
	defer r.release()
	return readRecordBeneath(rootfd, s.rootPath, rel)
}

// readRecordBeneath reads a whole file that holds one record, rel beneath dirfd
// (whose path is dirPath, for errors). It refuses symlinks anywhere in rel (ELOOP),
// non-regular files and files larger than any record.
func readRecordBeneath(dirfd int, dirPath, rel string) ([]byte, error) {
	return readFileBeneath(dirfd, dirPath, rel, maxRecordSize)
}

// readFileBeneath reads a whole regular file of at most limit bytes, rel beneath
// dirfd (whose path is dirPath, for errors), without following any symlink. The path
// of the file is only built for an error, to keep a hit free of it.
func readFileBeneath(dirfd int, dirPath, rel string, limit int64) ([]byte, error) {
	const flags = unix.O_RDONLY | unix.O_NONBLOCK
	fd, err := openBeneath(dirfd, rel, flags|oNoatime, 0)
	if oNoatime != 0 && errors.Is(err, unix.EPERM) {
		// Not our file, so O_NOATIME is not allowed; read it anyway.
		fd, err = openBeneath(dirfd, rel, flags, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dirPath + "/" + rel, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: dirPath + "/" + rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "open", Path: dirPath + "/" + rel, Err: errNotRegular}
	}
	if st.Size < 0 || st.Size > limit {
		return nil, &fs.PathError{Op: "read", Path: dirPath + "/" + rel, Err: fmt.Errorf("%w: %d bytes", errFormat, st.Size)}
	}
	// Files are replaced by rename and never written in place, so the size is final;
	// ask for one byte more anyway, so that a file growing underneath shows up as a
	// length mismatch instead of being silently cut.
	buf := make([]byte, st.Size+1)
	n, err := readFull(fd, buf)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: dirPath + "/" + rel, Err: err}
	}
	return buf[:n], nil
}

// readFull reads into buf until it is full or the file ends.
func readFull(fd int, buf []byte) (int, error) {
	off := 0
	for off < len(buf) {
		var n int
		err := retryEINTR(func() (err error) {
			n, err = unix.Read(fd, buf[off:])
			return err
		})
		if err != nil {
			return off, err
		}
		if n == 0 {
			break
		}
		off += n
	}
	return off, nil
}

// writeFull writes all of b to fd.
func writeFull(fd int, b []byte) error {
	for len(b) > 0 {
		var n int
		err := retryEINTR(func() (err error) {
			n, err = unix.Write(fd, b)
			return err
		})
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// createTemp creates a new, empty, private temporary file in the directory dfd. Its
// name starts with tmpPrefix, which no entry name can, so a crashed writer's leftovers
// are never read as entries.
func createTemp(dfd int) (fd int, name string, err error) {
	for range 100 {
		name = tmpPrefix + strconv.FormatUint(rand.Uint64(), 36)
		err = retryEINTR(func() (err error) {
			fd, err = unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
			return err
		})
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err != nil {
		return -1, name, err
	}
	return fd, name, nil
}

// isNotExist reports whether err means a path (or one of its directories) is missing.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
}
