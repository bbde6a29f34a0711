//go:build unix

package fsys

import "golang.org/x/sys/unix"

// Stat_t is the system's stat structure.
type Stat_t = unix.Stat_t

// Flags, modes and errors, as the system defines them.
const (
	O_RDONLY    = unix.O_RDONLY
	O_WRONLY    = unix.O_WRONLY
	O_RDWR      = unix.O_RDWR
	O_CREAT     = unix.O_CREAT
	O_EXCL      = unix.O_EXCL
	O_NONBLOCK  = unix.O_NONBLOCK
	O_DIRECTORY = unix.O_DIRECTORY
	O_NOFOLLOW  = unix.O_NOFOLLOW
	O_CLOEXEC   = unix.O_CLOEXEC

	S_IFMT  = unix.S_IFMT
	S_IFDIR = unix.S_IFDIR
	S_IFREG = unix.S_IFREG
	S_IFLNK = unix.S_IFLNK

	AT_SYMLINK_NOFOLLOW = unix.AT_SYMLINK_NOFOLLOW

	LOCK_EX = unix.LOCK_EX
	LOCK_NB = unix.LOCK_NB
	LOCK_UN = unix.LOCK_UN

	EINTR       = unix.EINTR
	EAGAIN      = unix.EAGAIN
	EWOULDBLOCK = unix.EWOULDBLOCK
	EEXIST      = unix.EEXIST
	ENOENT      = unix.ENOENT
	ENOTDIR     = unix.ENOTDIR
	ELOOP       = unix.ELOOP
	EMLINK      = unix.EMLINK
	EXDEV       = unix.EXDEV
	EPERM       = unix.EPERM
	ENOSYS      = unix.ENOSYS
)

// The system calls.
var (
	Open        = unix.Open
	Openat      = unix.Openat
	Close       = unix.Close
	Read        = unix.Read
	Write       = unix.Write
	Fstat       = unix.Fstat
	Fstatat     = unix.Fstatat
	Fsync       = unix.Fsync
	Dup         = unix.Dup
	CloseOnExec = unix.CloseOnExec
	Mkdirat     = unix.Mkdirat
	Unlinkat    = unix.Unlinkat
	Renameat    = unix.Renameat
	Flock       = unix.Flock
)

// SetMtimeAt sets the modification (and access) time of name in dirfd to ns
// nanoseconds since the Unix epoch, without following a symlink.
func SetMtimeAt(dirfd int, name string, ns int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}
