package filestore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Resolving paths beneath the root
//
// Every file the store touches is named by a path relative to the root ("ns/ab/abcd…")
// and reached through an os.Root of the root directory that the Store holds from New
// to Close, never by an absolute path, so that no symlink and no ".." can lead out of
// it on any system. os.Root follows a symlink that stays inside the root, though, even
// in the last component. The store refuses those too, so that a link planted in place
// of one namespace's directory can never make it read or write another's: dir opens
// a directory one component at a time, and openFile opens a file in it, each time
// with an lstat first and a check afterwards that what was opened is what lstat saw
// (the same file, not a symlink), so that a link swapped in between is caught as well.
// Operations on a name in a directory (rename, remove, mkdir, lstat) act on the name
// itself and never follow it.
//
// On Linux, reads and writes take a shorter road when they can (see
// fastread_linux.go and fastwrite_linux.go): one openat2 call that refuses symlinks
// and ".." in the kernel, so that a hit costs one open, fstat, read and close, and a
// write one open of its directory before the temporary file, write and rename. The
// walk here costs about three system calls per directory.

// rootDir is the open root: the os.Root everything is resolved in, and the Linux
// fast path's descriptor of the same directory (nil elsewhere or without openat2).
type rootDir struct {
	r    *os.Root
	fast *fastRoot
}

// openRootDir opens the root directory. The root's own path may go through symlinks
// (it is the caller's choice); nothing below it may.
func openRootDir(path string) (*rootDir, error) {
	r, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	return &rootDir{r: r, fast: newFastRoot(r)}, nil
}

// close closes the root; operations running on it finish first (os.Root counts them).
func (rd *rootDir) close() {
	rd.r.Close()
	rd.fast.close()
}

// errClosed reports an operation on a closed Store.
var errClosed = errors.New("filestore: store is closed")

// rootDir returns the current root, or errClosed.
func (s *Store) rootDir() (*rootDir, error) {
	rd := s.root.Load()
	if rd == nil {
		return nil, errClosed
	}
	return rd, nil
}

// rootCheckEvery is how often, at most, a miss checks whether the root directory was
// removed or replaced under the store (see recoverRoot).
const rootCheckEvery = time.Second

// recoverRoot re-creates the root directory if the one the store holds open was
// removed or replaced at its path (rm -rf of the cache directory, perhaps followed by
// another process re-creating it): it creates the path as New does, opens it, makes
// New's ownership checks, and swaps the new root in. It reports whether a new root is
// in place, so that the caller retries its operation once. Without force (a miss,
// which may be an ordinary one) it looks at most once per rootCheckEvery of the
// store's clock; with force (a write that found its directories missing and could not
// create them) it always looks. The hit path never calls it. After a swap, the
// file-system watches are armed anew.
func (s *Store) recoverRoot(force bool) bool {
	if !s.swapRoot(force) {
		return false
	}
	s.watch.rearm(s)
	return true
}

// swapRoot is recoverRoot without the watches.
func (s *Store) swapRoot(force bool) bool {
	s.rootMu.Lock()
	defer s.rootMu.Unlock()
	old := s.root.Load()
	if old == nil {
		return false
	}
	if !force {
		now := s.now()
		if now.Before(s.nextRootCheck) {
			return false
		}
		s.nextRootCheck = now.Add(rootCheckEvery)
	}
	was, err := old.r.Stat(".")
	if err != nil {
		return false
	}
	if err := os.MkdirAll(s.rootPath, 0o700); err != nil {
		s.log.Warn("filestore: re-create removed root", "root", s.rootPath, "err", err)
		return false
	}
	nr, err := openRootDir(s.rootPath)
	if err != nil {
		s.log.Warn("filestore: reopen re-created root", "root", s.rootPath, "err", err)
		return false
	}
	if now, err := nr.r.Stat("."); err != nil || os.SameFile(now, was) {
		nr.close() // the same directory: it was not removed
		return false
	}
	if !s.allowShared {
		if err := checkPrivate(nr.r, s.rootPath); err != nil {
			s.log.Warn("filestore: refusing re-created root", "root", s.rootPath, "err", err)
			nr.close()
			return false
		}
	}
	s.root.Store(nr)
	old.close()
	s.log.Info("filestore: root directory was removed or replaced; reopened it", "root", s.rootPath)
	return true
}

// ensureDirsRecover is ensureDirs, re-creating the root first and trying once more
// if the root itself has gone.
func (s *Store) ensureDirsRecover(namespace, dir string) error {
	err := s.ensureDirs(namespace, dir)
	if err != nil && isNotExist(err) && s.recoverRoot(true) {
		err = s.ensureDirs(namespace, dir)
	}
	return err
}

// joinRel joins relative path components with "/".
func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// splitRel splits a relative path into its directory ("" for the root) and last name.
func splitRel(rel string) (dir, name string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

// abs returns the absolute path of rel, for messages.
func (s *Store) abs(rel string) string { return joinRel(s.rootPath, rel) }

// errSymlink reports a symlink (or something swapped in while it was opened) where the
// store needs a plain file or directory; it is refused, never followed.
var errSymlink = errors.New("a symlink is in the way; refusing to follow it")

// errNotDir reports a file where the store needs a directory.
var errNotDir = errors.New("not a directory (a symlink or a file is there); refusing to use it")

// errNotRegular reports an entry path that is not a regular file.
var errNotRegular = errors.New("not a regular file")

// dir opens the directory rel (relative to the root; "" is the root itself) one
// component at a time, refusing a symlink in any of them. The caller closes it.
func (s *Store) dir(rel string) (*os.Root, error) {
	rd, err := s.rootDir()
	if err != nil {
		return nil, err
	}
	d, err := rd.r.OpenRoot(".")
	for rest := rel; err == nil && rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, "/")
		var next *os.Root
		next, err = openSubdir(d, name)
		d.Close()
		d = next
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: s.abs(rel), Err: err}
	}
	return d, nil
}

// openSubdir opens the directory name in d, refusing a symlink.
func openSubdir(d *os.Root, name string) (*os.Root, error) {
	li, err := d.Lstat(name)
	if err != nil {
		return nil, err
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		return nil, errSymlink
	}
	if !li.IsDir() {
		return nil, errNotDir
	}
	sub, err := d.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	if fi, err := sub.Stat("."); err != nil || !os.SameFile(li, fi) {
		sub.Close()
		return nil, errSymlink // swapped since the lstat
	}
	return sub, nil
}

// openFile opens the file name in d without following a symlink: an existing name
// must be a regular file, and the file opened must be the one lstat saw.
func openFile(d *os.Root, name string, flag int) (*os.File, error) {
	li, err := d.Lstat(name)
	switch {
	case err == nil && li.Mode()&fs.ModeSymlink != 0:
		return nil, errSymlink
	case err == nil && !li.Mode().IsRegular():
		return nil, errNotRegular
	case err != nil && (flag&os.O_CREATE == 0 || !isNotExist(err)):
		return nil, err
	}
	f, err := d.OpenFile(name, flag, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || li != nil && !os.SameFile(li, fi)) {
		err = errSymlink // swapped since the lstat
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// inDir runs fn with the directory rel beneath the root.
func (s *Store) inDir(rel string, fn func(d *os.Root) error) error {
	d, err := s.dir(rel)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(d)
}

// lstat returns the status of rel beneath the root, not following a symlink anywhere.
func (s *Store) lstat(rel string) (fi fs.FileInfo, err error) {
	dir, name := splitRel(rel)
	err = s.inDir(dir, func(d *os.Root) error {
		fi, err = d.Lstat(name)
		return err
	})
	return fi, err
}

// mkdir creates the directory rel beneath the root with mode 0700 if it is missing,
// and checks that what is there is a real directory, not a symlink.
func (s *Store) mkdir(rel string) error {
	dir, name := splitRel(rel)
	return s.inDir(dir, func(d *os.Root) error {
		err := d.Mkdir(name, 0o700)
		if err == nil || !errors.Is(err, fs.ErrExist) {
			return err
		}
		if fi, err := d.Lstat(name); err != nil || !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: s.abs(rel), Err: errNotDir}
		}
		return nil
	})
}

// readFile reads the whole regular file name in d, of at most limit bytes, without
// following a symlink.
func readFile(d *os.Root, name string, limit int64) ([]byte, error) {
	f, err := openFile(d, name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %d bytes", errFormat, fi.Size())
	}
	// Files are replaced by rename and never written in place, so the size is final;
	// ask for one byte more anyway, so that a file growing underneath shows up as a
	// length mismatch instead of being silently cut.
	buf := make([]byte, fi.Size()+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return buf[:n], nil
}

// readRecord reads the record file rel beneath the root: in one openat2 call on Linux
// where it can, else through dir. Its errors do not name the path (the caller does,
// when it reports one): a miss is the common case, and naming its path cost two
// allocations.
func (s *Store) readRecord(rel string) ([]byte, error) {
	rd, err := s.rootDir()
	if err != nil {
		return nil, err
	}
	if data, err, ok := rd.fast.read(rel, maxRecordSize); ok {
		return data, err
	}
	dir, name := splitRel(rel)
	var data []byte
	err = s.inDir(dir, func(d *os.Root) (err error) {
		data, err = readFile(d, name, maxRecordSize)
		return err
	})
	return data, err
}

// writeFile atomically replaces the file name in directory dir (relative to the root)
// with data: it writes a temporary file in the same directory and renames it over
// name, so that a reader sees the old file or the new one, never a part. The caller
// creates dir. A symlink in place of dir or one of its parents is an error; one in
// place of name is replaced, never followed.
func (s *Store) writeFile(dir, name string, data []byte) error {
	rd, err := s.rootDir()
	ok := false
	if err == nil {
		err, ok = rd.fast.writeFile(dir, name, data, s.fsync, &s.syncs)
	}
	if err == nil && !ok {
		err = s.inDir(dir, func(d *os.Root) error { return writeIn(d, name, data, s.fsync, &s.syncs) })
	}
	if err != nil {
		return &fs.PathError{Op: "write", Path: s.abs(joinRel(dir, name)), Err: err}
	}
	return nil
}

// writeIn is writeFile on the directory d, resolved by the walk. fsync syncs the file
// and d, counting each call in syncs.
func writeIn(d *os.Root, name string, data []byte, fsync bool, syncs *atomic.Int64) error {
	f, tmp, err := createTemp(d)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && fsync {
		syncs.Add(1)
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.Rename(tmp, name)
	}
	if err != nil {
		_ = d.Remove(tmp)
		return err
	}
	if fsync {
		syncs.Add(1)
		return syncDir(d)
	}
	return nil
}

// remove removes the name in directory dir (relative to the root): a symlink there
// is removed itself, never followed.
func (s *Store) remove(dir, name string) error {
	rd, err := s.rootDir()
	if err != nil {
		return err
	}
	if err, ok := rd.fast.remove(dir, name); ok {
		return err
	}
	return s.inDir(dir, func(d *os.Root) error { return d.Remove(name) })
}

// createTemp creates a new, empty, private temporary file in d. Its name starts with
// tmpPrefix, which no entry name can, so a crashed writer's leftovers are never read
// as entries.
func createTemp(d *os.Root) (f *os.File, name string, err error) {
	for range 100 {
		name = tmpPrefix + strconv.FormatUint(rand.Uint64(), 36)
		f, err = d.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	return f, name, err
}

// removeStaleTemp removes name in d if it is a temporary file older than tempMaxAge.
// File times come from the file system, so this uses the real time, not the Clock.
func removeStaleTemp(d *os.Root, name string) {
	if fi, err := d.Lstat(name); err == nil && time.Since(fi.ModTime()) > tempMaxAge {
		_ = d.Remove(name)
	}
}

// readDir lists the directory d.
func readDir(d *os.Root) ([]fs.DirEntry, error) {
	f, err := d.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// isNotExist reports whether err means a path (or one of its directories) is missing.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// isRefused reports whether err is the store refusing what it found at a path: a
// symlink, a file that is not regular, or a directory that is not one.
func isRefused(err error) bool {
	return errors.Is(err, errSymlink) || errors.Is(err, errNotRegular) || errors.Is(err, errNotDir) ||
		errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EXDEV)
}
