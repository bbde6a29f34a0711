// Package filestore is cachier's embedded default store: one file per entry in a
// directory on the local machine, safe for concurrent use by goroutines and by
// processes that share the directory.
//
// Application code should use package cachier, which opens a filestore in
// [DefaultDir] unless told otherwise; the URL form is file:///path or file://.
//
// # Layout
//
// Entries live at <root>/<namespace>/<xx>/<hash>, where <hash> is 128 bits of
// SHA-256 of the key's ID in hex and <xx> its first two digits. Hashing the ID means no
// ID, however long or strange ("../..", 500 bytes of UTF-8), can reach outside the
// directory or name an internal file; the ID itself is kept inside the file so that
// Entries lists real keys. A namespace directory keeps a readable, escaped form of the
// namespace (see nsDirName for the rules, which also guard against case-insensitive
// file systems). The 256-way fan-out keeps directories small, and Get computes the
// path directly, so a read costs the same with a thousand entries or a million: one
// open, fstat, read and close.
//
// # Crash safety and integrity
//
// Set writes a temporary file in the entry's directory and renames it over the entry,
// so a reader sees the old value or the new one, never a mix, even if the writer is
// killed half way; with [Options.Fsync] the file and the directory are also synced.
// Temporary files have names no entry can have, so a crashed writer's leftovers are
// never read, and Clear and DeleteBefore remove them after a minute. Every file
// carries a magic number, a format version and a CRC-32C over all of it: a truncated,
// damaged or foreign file is a miss whose error matches both store.ErrNotFound and
// [ErrCorrupt], never a wrong value and never a panic.
//
// # Leases
//
// A calculation lease is a small file beside its entry, changed only under a flock
// held for the read-check-write; see lease.go for why this shape. The kernel drops a
// flock when its holder dies, so a killed process never leaves a lock held, and its
// lease expires on time for the next caller to take over. Expiry is measured with
// [Options.Clock].
//
// # Notifications
//
// Store implements store.Notifier with one fsnotify watcher per Store, watching
// fan-out directories with reference counts, and falls back to polling where
// notifications are unavailable.
//
// # Security
//
// The root must belong to the current user and not be writable by group or others,
// unless [Options.AllowSharedDir] says otherwise: anyone who can write to it can plant
// entries that a program would return as its own results. Directories are created
// 0700 and files 0600; entry and lease files are opened with O_NOFOLLOW, and listing
// skips symlinked directories.
//
// # Portability
//
// The package uses Unix system calls (flock, O_NOFOLLOW) and builds on Unix systems
// only.
package filestore
