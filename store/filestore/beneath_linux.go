package filestore

import (
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// oDirWalk opens a directory only as a base for *at calls: O_PATH needs no read
// permission and does not touch the directory.
const oDirWalk = unix.O_PATH

// resolveBeneath confines openat2 to the directory it starts from and refuses every
// symlink on the way, magic /proc links included.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

var (
	openat2Once sync.Once
	openat2Off  atomic.Bool
)

// probeOpenat2 finds out once whether openat2 works here (Linux 5.6 and later, and not
// filtered by a sandbox); if not, openBeneath walks paths component by component.
func probeOpenat2(dirfd int) {
	openat2Once.Do(func() {
		fd, err := unix.Openat2(dirfd, ".", &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: resolveBeneath,
		})
		if err != nil {
			openat2Off.Store(true)
			return
		}
		unix.Close(fd)
	})
}

func haveOpenat2() bool { return !openat2Off.Load() }

func disableOpenat2() { openat2Off.Store(true) }

// openat2Beneath opens rel beneath dirfd with openat2, refusing symlinks.
func openat2Beneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolveBeneath}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		// EAGAIN: a concurrent rename raced the lookup; the kernel asks for a retry.
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
			return fd, err
		}
	}
}
