package filestore

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// tryLock takes an exclusive lock on the file handle fd without waiting; busy reports that another
// handle holds it. It is LockFileEx on one byte far past the end of the file, so that
// it never blocks reading or writing the file, and like flock it belongs to the
// handle and goes when its process dies.
func tryLock(fd uintptr) (busy bool, err error) {
	ol := windows.Overlapped{OffsetHigh: 0x7fffffff}
	err = windows.LockFileEx(windows.Handle(fd), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return true, nil
	}
	return false, err
}

// unlock releases the lock tryLock took (closing f does too).
func unlock(fd uintptr) {
	ol := windows.Overlapped{OffsetHigh: 0x7fffffff}
	_ = windows.UnlockFileEx(windows.Handle(fd), 0, 1, 0, &ol)
}

// syncDir does nothing: Windows cannot flush a directory, and need not, since a
// rename is durable once it returns on NTFS's journal.
func syncDir(*os.Root) error { return nil }

// checkPrivate only checks that the root is a directory: Windows files have no Unix
// owner or mode, and a new directory inherits its parent's access list.
func checkPrivate(r *os.Root, root string) error {
	if fi, err := r.Stat("."); err != nil || !fi.IsDir() {
		return fmt.Errorf("filestore: root %s is not a usable directory: %v", root, err)
	}
	return nil
}
