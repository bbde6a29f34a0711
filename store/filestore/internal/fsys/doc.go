// Package fsys is the file store's view of the system calls it uses: on Unix
// systems the calls of golang.org/x/sys/unix themselves, and on Windows the same
// calls built on Windows handles (an "fd" is a HANDLE), so that the file store's code
// is one for every system.
//
// On Windows, Openat opens one name relative to a directory handle with
// NtCreateFile (the RootDirectory of its object attributes), which is what openat is
// on Unix: the path is never resolved from the root again. With O_NOFOLLOW it opens
// a reparse point (a symlink or a junction) itself instead of following it, and then
// fails with ELOOP, so nothing beneath the store's root can lead out of it. Renameat
// renames through the handle of the file (FileRenameInfoEx with POSIX semantics and
// replace-if-exists, relative to the target directory's handle, falling back to
// FileRenameInfo), and Unlinkat deletes through it (POSIX semantics where the
// system has them). Flock is LockFileEx on one byte far past the end of the file, so
// that the lock never blocks reading or writing the file's contents.
package fsys
