package filestore

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The read path on Linux: one openat2 call with RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS
// and RESOLVE_NO_MAGICLINKS resolves the whole path beneath the root in the kernel
// and fails on any symlink, "..", or absolute path, then fstat, read and close, on
// the descriptor itself (no os.File, no poller registration). A hit costs what the
// cheapest read of a small file costs; os.Root, which walks in user space and returns
// an *os.File, measured about twice that. Without openat2 (Linux before 5.6, or a
// sandbox that filters it) reads take the walk of root.go.

// openat2Off is set when openat2 is unusable here; reads then walk.
var openat2Off atomic.Bool

const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// fastRoot is a descriptor of the root directory. Every call on it holds mu for
// reading, and close takes it for writing, so that no call can use the descriptor's
// number after it is closed (and perhaps reused by another open). A lock rather than
// the *os.File's own reference counting (SyscallConn's Control): Control takes a
// closure, and the closure and what it captures were three allocations per call.
type fastRoot struct {
	f      *os.File
	fd     int
	mu     sync.RWMutex
	closed bool // under mu
}

// newFastRoot opens the root for openat2, or returns nil if openat2 does not work.
func newFastRoot(r *os.Root) *fastRoot {
	if openat2Off.Load() {
		return nil
	}
	f, err := r.Open(".")
	if err != nil {
		return nil
	}
	fr := &fastRoot{f: f, fd: int(f.Fd())}
	if _, err, _ = fr.openat2(".", unix.O_PATH|unix.O_DIRECTORY, 0, true); err != nil {
		openat2Off.Store(true)
		f.Close()
		return nil
	}
	return fr
}

func (fr *fastRoot) close() {
	if fr != nil {
		fr.mu.Lock()
		defer fr.mu.Unlock()
		fr.closed = true
		fr.f.Close()
	}
}

// openat2 opens rel beneath the root, refusing symlinks; ok is false if the root is
// closed. mode is the permission of a file that O_CREAT creates (zero otherwise, as
// openat2 demands). With closeIt, the descriptor is closed at once (a probe).
func (fr *fastRoot) openat2(rel string, flags int, mode uint32, closeIt bool) (fd int, err error, ok bool) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Mode: uint64(mode), Resolve: resolveBeneath}
	fr.mu.RLock()
	defer fr.mu.RUnlock()
	if fr.closed {
		return -1, errClosed, false
	}
	for {
		fd, err = unix.Openat2(fr.fd, rel, &how)
		// EAGAIN: a concurrent rename raced the lookup; the kernel asks for a retry.
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	if err == nil && closeIt {
		unix.Close(fd)
	}
	return fd, err, true
}

// read reads the whole regular file rel beneath the root, of at most limit bytes. ok
// is false when the caller must take the walk instead.
func (fr *fastRoot) read(rel string, limit int64) (data []byte, err error, ok bool) {
	if fr == nil || openat2Off.Load() {
		return nil, nil, false
	}
	// O_NOATIME keeps a read from writing: with relatime, the first read of a file
	// after it is written updates its access time, a journal write on every first
	// hit. It is allowed only on the process's own files (EPERM otherwise).
	const flags = unix.O_RDONLY | unix.O_NONBLOCK
	fd, err, ok := fr.openat2(rel, flags|unix.O_NOATIME, 0, false)
	if errors.Is(err, unix.EPERM) {
		fd, err, ok = fr.openat2(rel, flags, 0, false)
	}
	if !ok {
		return nil, errClosed, true
	}
	if errors.Is(err, unix.ENOSYS) {
		openat2Off.Store(true)
		return nil, nil, false
	}
	if err != nil {
		return nil, err, true
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err, true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errNotRegular, true
	}
	if st.Size > limit {
		return nil, errFormat, true
	}
	// One byte more than fstat said: a file that grew underneath comes back longer,
	// and fails the length check. The reading stops once it has the size fstat
	// reported, without a last read to see the end of the file: files are replaced by
	// rename, never written in place, and a read of a regular file returns less than
	// asked only at its end, so that read would return nothing, one system call of
	// five on a hit.
	buf := make([]byte, st.Size+1)
	off := 0
	for off < len(buf) {
		n, err := unix.Read(fd, buf[off:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err, true
		}
		off += n
		if n == 0 || off >= int(st.Size) {
			break
		}
	}
	return buf[:off], nil, true
}
