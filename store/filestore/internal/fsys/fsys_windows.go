//go:build windows

package fsys

import (
	"errors"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Timespec is a time in seconds and nanoseconds since the Unix epoch.
type Timespec struct{ Sec, Nsec int64 }

// Unix returns the time in seconds and nanoseconds.
func (t Timespec) Unix() (sec, nsec int64) { return t.Sec, t.Nsec }

// Stat_t is what Fstat and Fstatat report of a file: its type (S_IFDIR, S_IFREG or
// S_IFLNK for a reparse point), size, modification time and identity.
type Stat_t struct {
	Mode  uint32
	Size  int64
	Mtim  Timespec
	Dev   uint64
	Ino   uint64
	Nlink uint32
	// Uid is -1, what os.Getuid returns on Windows: files have no Unix owner (their
	// access is the directory's ACL, which a new root inherits from its parent).
	Uid int
}

// Flags and modes, with the values Linux gives them.
const (
	O_RDONLY    = 0x0
	O_WRONLY    = 0x1
	O_RDWR      = 0x2
	O_CREAT     = 0x40
	O_EXCL      = 0x80
	O_NONBLOCK  = 0x800
	O_DIRECTORY = 0x10000
	O_NOFOLLOW  = 0x20000
	O_CLOEXEC   = 0x80000

	S_IFMT  = 0xf000
	S_IFDIR = 0x4000
	S_IFREG = 0x8000
	S_IFLNK = 0xa000

	AT_SYMLINK_NOFOLLOW = 0x100

	LOCK_EX = 0x2
	LOCK_NB = 0x4
	LOCK_UN = 0x8
)

// Errors, as package syscall defines them on Windows; Windows errors are turned
// into them where the file store tests for them.
const (
	EINTR       = syscall.EINTR
	EAGAIN      = syscall.EAGAIN
	EWOULDBLOCK = syscall.EWOULDBLOCK
	EEXIST      = syscall.EEXIST
	ENOENT      = syscall.ENOENT
	ENOTDIR     = syscall.ENOTDIR
	ELOOP       = syscall.ELOOP
	EMLINK      = syscall.EMLINK
	EXDEV       = syscall.EXDEV
	EPERM       = syscall.EPERM
	ENOSYS      = syscall.ENOSYS
)

// mapErr turns a Windows error into the errno the file store tests for.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var st windows.NTStatus
	if errors.As(err, &st) {
		switch st {
		case windows.STATUS_OBJECT_NAME_COLLISION:
			return EEXIST
		case windows.STATUS_OBJECT_NAME_NOT_FOUND, windows.STATUS_OBJECT_PATH_NOT_FOUND, windows.STATUS_DELETE_PENDING:
			return ENOENT
		case windows.STATUS_NOT_A_DIRECTORY:
			return ENOTDIR
		case windows.STATUS_REPARSE_POINT_ENCOUNTERED, windows.STATUS_STOPPED_ON_SYMLINK:
			return ELOOP
		case windows.STATUS_FILE_IS_A_DIRECTORY:
			return syscall.EISDIR
		}
		err = st.Errno()
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		switch en {
		case windows.ERROR_FILE_EXISTS, windows.ERROR_ALREADY_EXISTS:
			return EEXIST
		case windows.ERROR_FILE_NOT_FOUND, windows.ERROR_PATH_NOT_FOUND:
			return ENOENT
		case windows.ERROR_DIRECTORY:
			return ENOTDIR
		case windows.ERROR_LOCK_VIOLATION:
			return EWOULDBLOCK
		case windows.ERROR_CANT_ACCESS_FILE, windows.ERROR_CANT_RESOLVE_FILENAME:
			return ELOOP
		}
		return en
	}
	return err
}

const shareAll = windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE

// dirAccess is the access of a directory handle: list it, open names in it.
const dirAccess = windows.FILE_LIST_DIRECTORY | windows.FILE_TRAVERSE | windows.FILE_READ_ATTRIBUTES | windows.SYNCHRONIZE

// Open opens the directory at path (the store's root; its own path may go through
// links). Only directories are opened this way.
func Open(path string, flags int, _ uint32) (int, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return -1, err
	}
	access := uint32(windows.GENERIC_READ)
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if flags&O_DIRECTORY != 0 {
		access, attrs = dirAccess, windows.FILE_FLAG_BACKUP_SEMANTICS
	}
	h, err := windows.CreateFile(p, access, shareAll, nil, windows.OPEN_EXISTING, attrs, 0)
	if err != nil {
		return -1, mapErr(err)
	}
	return int(h), nil
}

// Openat opens name, a single path component, in the directory dirfd, relative to
// its handle; "." is the directory itself.
func Openat(dirfd int, name string, flags int, _ uint32) (int, error) {
	var access uint32
	switch {
	case flags&O_DIRECTORY != 0:
		access = dirAccess
	case flags&3 == O_WRONLY:
		access = windows.FILE_GENERIC_WRITE
	case flags&3 == O_RDWR:
		access = windows.FILE_GENERIC_READ | windows.FILE_GENERIC_WRITE
	default:
		access = windows.FILE_GENERIC_READ
	}
	disposition := uint32(windows.FILE_OPEN)
	switch {
	case flags&O_CREAT != 0 && flags&O_EXCL != 0:
		disposition = windows.FILE_CREATE
	case flags&O_CREAT != 0:
		disposition = windows.FILE_OPEN_IF
	}
	options := uint32(0)
	if flags&O_DIRECTORY != 0 {
		options |= windows.FILE_DIRECTORY_FILE
	}
	return openat(dirfd, name, access, disposition, options, flags&O_NOFOLLOW != 0)
}

// openat is NtCreateFile of name relative to dirfd. With nofollow, a reparse point is
// opened itself and refused with ELOOP.
func openat(dirfd int, name string, access, disposition, options uint32, nofollow bool) (int, error) {
	if name == "." {
		name = ""
	}
	if name == ".." || strings.ContainsAny(name, `/\:`) {
		return -1, ENOENT // names are single components, built by the store
	}
	objName, err := windows.NewNTUnicodeString(name)
	if err != nil {
		return -1, err
	}
	oa := windows.OBJECT_ATTRIBUTES{
		RootDirectory: windows.Handle(dirfd),
		ObjectName:    objName,
		Attributes:    windows.OBJ_CASE_INSENSITIVE,
	}
	oa.Length = uint32(unsafe.Sizeof(oa))
	options |= windows.FILE_SYNCHRONOUS_IO_NONALERT
	if nofollow {
		options |= windows.FILE_OPEN_REPARSE_POINT
	}
	var h windows.Handle
	var iosb windows.IO_STATUS_BLOCK
	err = windows.NtCreateFile(&h, access|windows.SYNCHRONIZE, &oa, &iosb, nil, windows.FILE_ATTRIBUTE_NORMAL,
		shareAll, disposition, options, 0, 0)
	if err != nil {
		return -1, mapErr(err)
	}
	if nofollow {
		var fi windows.ByHandleFileInformation
		if err := windows.GetFileInformationByHandle(h, &fi); err != nil {
			windows.CloseHandle(h)
			return -1, mapErr(err)
		}
		if fi.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 {
			windows.CloseHandle(h)
			return -1, ELOOP
		}
	}
	return int(h), nil
}

// Close closes the handle fd.
func Close(fd int) error { return mapErr(windows.CloseHandle(windows.Handle(fd))) }

// Read reads from fd.
func Read(fd int, p []byte) (int, error) {
	var n uint32
	err := windows.ReadFile(windows.Handle(fd), p, &n, nil)
	if errors.Is(err, windows.ERROR_HANDLE_EOF) || errors.Is(err, windows.ERROR_BROKEN_PIPE) {
		return 0, nil
	}
	return int(n), mapErr(err)
}

// Write writes to fd.
func Write(fd int, p []byte) (int, error) {
	var n uint32
	err := windows.WriteFile(windows.Handle(fd), p, &n, nil)
	return int(n), mapErr(err)
}

// Fstat reports on the open file fd.
func Fstat(fd int, st *Stat_t) error {
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(fd), &fi); err != nil {
		return mapErr(err)
	}
	switch {
	case fi.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0:
		st.Mode = S_IFLNK | 0o777
	case fi.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0:
		st.Mode = S_IFDIR | 0o700
	default:
		st.Mode = S_IFREG | 0o600
	}
	st.Size = int64(fi.FileSizeHigh)<<32 | int64(fi.FileSizeLow)
	ns := fi.LastWriteTime.Nanoseconds()
	st.Mtim = Timespec{Sec: ns / 1e9, Nsec: ns % 1e9}
	st.Dev = uint64(fi.VolumeSerialNumber)
	st.Ino = uint64(fi.FileIndexHigh)<<32 | uint64(fi.FileIndexLow)
	st.Nlink = fi.NumberOfLinks
	st.Uid = -1
	return nil
}

// Fstatat reports on name in dirfd; with AT_SYMLINK_NOFOLLOW a reparse point is
// reported as S_IFLNK, not followed.
func Fstatat(dirfd int, name string, st *Stat_t, flags int) error {
	var fd int
	var err error
	if flags&AT_SYMLINK_NOFOLLOW != 0 {
		fd, err = openatLink(dirfd, name, windows.FILE_READ_ATTRIBUTES)
	} else {
		fd, err = openat(dirfd, name, windows.FILE_READ_ATTRIBUTES, windows.FILE_OPEN, 0, false)
	}
	if err != nil {
		return err
	}
	defer Close(fd)
	return Fstat(fd, st)
}

// openatLink opens name in dirfd without following a reparse point, and without
// refusing one: for Fstatat, Unlinkat and Renameat, which act on the link itself.
func openatLink(dirfd int, name string, access uint32) (int, error) {
	if name == "." {
		name = ""
	}
	if name == ".." || strings.ContainsAny(name, `/\:`) {
		return -1, ENOENT
	}
	objName, err := windows.NewNTUnicodeString(name)
	if err != nil {
		return -1, err
	}
	oa := windows.OBJECT_ATTRIBUTES{RootDirectory: windows.Handle(dirfd), ObjectName: objName, Attributes: windows.OBJ_CASE_INSENSITIVE}
	oa.Length = uint32(unsafe.Sizeof(oa))
	var h windows.Handle
	var iosb windows.IO_STATUS_BLOCK
	err = windows.NtCreateFile(&h, access|windows.SYNCHRONIZE, &oa, &iosb, nil, 0, shareAll, windows.FILE_OPEN,
		windows.FILE_OPEN_REPARSE_POINT|windows.FILE_SYNCHRONOUS_IO_NONALERT, 0, 0)
	if err != nil {
		return -1, mapErr(err)
	}
	return int(h), nil
}

// SetMtimeAt sets the modification time of name in dirfd to ns nanoseconds since the
// Unix epoch, without following a reparse point.
func SetMtimeAt(dirfd int, name string, ns int64) error {
	fd, err := openatLink(dirfd, name, windows.FILE_WRITE_ATTRIBUTES)
	if err != nil {
		return err
	}
	defer Close(fd)
	ft := windows.NsecToFiletime(ns)
	return mapErr(windows.SetFileTime(windows.Handle(fd), nil, &ft, &ft))
}

// Fsync flushes fd to stable storage. Directories cannot be flushed on Windows,
// and need not be: a rename is durable once it returns on NTFS's journal.
func Fsync(fd int) error {
	err := windows.FlushFileBuffers(windows.Handle(fd))
	if err != nil {
		var st Stat_t
		if Fstat(fd, &st) == nil && st.Mode&S_IFMT == S_IFDIR {
			return nil
		}
	}
	return mapErr(err)
}

// Dup duplicates the handle fd.
func Dup(fd int) (int, error) {
	p := windows.CurrentProcess()
	var h windows.Handle
	err := windows.DuplicateHandle(p, windows.Handle(fd), p, &h, 0, false, windows.DUPLICATE_SAME_ACCESS)
	if err != nil {
		return -1, mapErr(err)
	}
	return int(h), nil
}

// CloseOnExec does nothing: handles are not inherited unless asked for.
func CloseOnExec(int) {}

// Mkdirat creates the directory name in dirfd.
func Mkdirat(dirfd int, name string, _ uint32) error {
	fd, err := openat(dirfd, name, windows.FILE_LIST_DIRECTORY, windows.FILE_CREATE, windows.FILE_DIRECTORY_FILE, true)
	if err != nil {
		return err
	}
	return Close(fd)
}

// fileDispositionInfoEx is FILE_DISPOSITION_INFO_EX.
type fileDispositionInfoEx struct{ Flags uint32 }

// Unlinkat removes name in dirfd (a reparse point itself, never its target), with
// POSIX semantics where the system has them: the name goes at once even if the file
// is open elsewhere.
func Unlinkat(dirfd int, name string, _ int) error {
	fd, err := openatLink(dirfd, name, windows.DELETE|windows.FILE_READ_ATTRIBUTES)
	if err != nil {
		return err
	}
	defer Close(fd)
	h := windows.Handle(fd)
	ex := fileDispositionInfoEx{Flags: windows.FILE_DISPOSITION_DELETE | windows.FILE_DISPOSITION_POSIX_SEMANTICS | windows.FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE}
	err = windows.SetFileInformationByHandle(h, windows.FileDispositionInfoEx, (*byte)(unsafe.Pointer(&ex)), uint32(unsafe.Sizeof(ex)))
	if err == nil {
		return nil
	}
	del := uint32(1) // FILE_DISPOSITION_INFO{DeleteFile: TRUE}
	return mapErr(windows.SetFileInformationByHandle(h, windows.FileDispositionInfo, (*byte)(unsafe.Pointer(&del)), 4))
}

// fileRenameInfo is FILE_RENAME_INFO; FileName runs on past the struct.
type fileRenameInfo struct {
	Flags          uint32 // ReplaceIfExists (FileRenameInfo) or flags (FileRenameInfoEx)
	RootDirectory  windows.Handle
	FileNameLength uint32
	FileName       [1]uint16
}

// Renameat renames oldname in olddirfd to newname in newdirfd, replacing newname
// if it exists, through the handle of the file: relative to the directories'
// handles, never by path.
func Renameat(olddirfd int, oldname string, newdirfd int, newname string) error {
	if newname == "" || newname == "." || newname == ".." || strings.ContainsAny(newname, `/\:`) {
		return ENOENT
	}
	fd, err := openatLink(olddirfd, oldname, windows.DELETE|windows.FILE_READ_ATTRIBUTES)
	if err != nil {
		return err
	}
	defer Close(fd)
	name16, err := windows.UTF16FromString(newname)
	if err != nil {
		return err
	}
	name16 = name16[:len(name16)-1]
	size := int(unsafe.Offsetof(fileRenameInfo{}.FileName)) + 2*len(name16) + 2
	buf := make([]uint64, (size+7)/8) // 8-aligned
	info := (*fileRenameInfo)(unsafe.Pointer(&buf[0]))
	info.RootDirectory = windows.Handle(newdirfd)
	info.FileNameLength = uint32(2 * len(name16))
	copy(unsafe.Slice(&info.FileName[0], len(name16)), name16)
	info.Flags = windows.FILE_RENAME_REPLACE_IF_EXISTS | windows.FILE_RENAME_POSIX_SEMANTICS
	h := windows.Handle(fd)
	err = windows.SetFileInformationByHandle(h, windows.FileRenameInfoEx, (*byte)(unsafe.Pointer(info)), uint32(size))
	if err == nil {
		return nil
	}
	// Without FileRenameInfoEx (before Windows 10 1607, and under wine): the native
	// call, which takes the same layout with a BOOLEAN ReplaceIfExists.
	info.Flags = 1
	var iosb windows.IO_STATUS_BLOCK
	return mapErr(windows.NtSetInformationFile(h, &iosb, (*byte)(unsafe.Pointer(info)), uint32(size), windows.FileRenameInformation))
}

// lockOffsetHigh places the lock of Flock far past any file's end, so that it never
// blocks reading or writing the file.
const lockOffsetHigh = 0x7fffffff

// Flock takes (LOCK_EX, with LOCK_NB without waiting) or releases (LOCK_UN) an
// exclusive lock on fd. Like flock, it belongs to the handle: another handle, in this
// process or another, is refused.
func Flock(fd int, how int) error {
	h := windows.Handle(fd)
	ol := windows.Overlapped{OffsetHigh: lockOffsetHigh}
	if how&LOCK_UN != 0 {
		return mapErr(windows.UnlockFileEx(h, 0, 1, 0, &ol))
	}
	flags := uint32(windows.LOCKFILE_EXCLUSIVE_LOCK)
	if how&LOCK_NB != 0 {
		flags |= windows.LOCKFILE_FAIL_IMMEDIATELY
	}
	return mapErr(windows.LockFileEx(h, flags, 0, 1, 0, &ol))
}
