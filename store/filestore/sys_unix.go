//go:build unix

package filestore

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// tryLock takes an exclusive flock on the open file fd without waiting; busy reports
// that another open file holds it. The kernel drops a flock when its holder dies.
func tryLock(fd uintptr) (busy bool, err error) {
	err = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK || err == unix.EINTR {
		return true, nil
	}
	return false, err
}

// unlock releases the lock tryLock took (closing f does too).
func unlock(fd uintptr) { _ = unix.Flock(int(fd), unix.LOCK_UN) }

// syncDir makes a rename in d durable.
func syncDir(d *os.Root) error {
	f, err := d.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// checkPrivate refuses a root that another user could write into.
func checkPrivate(r *os.Root, root string) error {
	fi, err := r.Stat(".")
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("filestore: root %s is not a directory", root)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("filestore: root %s is writable by group or others (mode %o); "+
			"chmod go-w it or set Options.AllowSharedDir", root, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("filestore: root %s is owned by uid %d, not by this process (uid %d); "+
			"set Options.AllowSharedDir to use it anyway", root, st.Uid, os.Getuid())
	}
	return nil
}
