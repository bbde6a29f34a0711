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
// The store is a store.Swapper, and package store keeps calculation leases (and version
// counters) over it as records in namespaces of their own ("\x01"+namespace, and
// "\x01"), in the same file format as entries. [Store.Swap] is a read-compare-write
// done under a flock on the fan-out directory's lock file; see swap.go for why this
// shape. The kernel drops a flock when its holder dies, so a killed process never
// leaves a lock held, and its lease expires on time for the next caller to take over.
//
// # Notifications
//
// Store implements store.Notifier with one fsnotify watcher per Store, watching
// fan-out directories with reference counts. Where notifications are unavailable,
// Watch reports errors.ErrUnsupported and cachier polls with its own backoff.
//
// # Expiry and size caps
//
// An entry's ExpiresAt is kept in its header (a flag and 8 bytes; entries without one
// keep the older layout), and DeleteExpired removes expired entries reading headers
// only. Options.MaxBytes and Options.MaxEntries (max_bytes and max_entries in a URL)
// cap the store across every process that shares the directory: the least recently
// used entries are evicted, recency being the entry file's mtime, stamped by Set and by
// a Get that hits. See [Store.Sweep] for how and when, and [Store.Usage] and
// [Store.Limits] for what a store holds and allows. Leases are never evicted.
//
// # Security
//
// The root must belong to the current user and not be writable by group or others,
// unless [Options.AllowSharedDir] says otherwise: anyone who can write to it can plant
// entries that a program would return as its own results. Directories are created
// 0700 and files 0600.
//
// No operation follows a symlink below the root. New opens the root directory once
// as an [os.Root] (its own path may go through symlinks) and the Store holds it until
// Close. If the root is removed (rm -rf) or replaced under a running Store, a write
// that finds its directories gone, or a miss (at most once a second of
// [Options.Clock]), re-creates the root with the checks New makes and swaps in a new
// one, so the Store keeps caching and shares entries with processes that opened the
// path since; its file-system watches (Watch) are armed again on the new root, and
// their waiters woken, since changes made meanwhile went unreported. Every file and
// directory is then reached through that os.Root, which no symlink and no ".." can
// lead out of on any system. os.Root does follow a symlink that stays inside the
// root; the store refuses those too, opening directories one component at a time and
// checking each time that what it opened is what lstat saw (see root.go). A symlink
// planted in place of a namespace directory, its .namespace file, a fan-out
// directory, an entry, a lease or counter record, or a lock file is refused wherever
// it points, inside the root or out: Get reads it as a damaged entry (a miss), a
// lease or counter behind it counts as damaged, Set, Delete, Acquire, Bump and the
// rest fail (a link in the last component is replaced or removed itself, never
// followed), and Clear, DeleteBefore, Entries, Leases, ReleaseAll and Namespaces skip
// it or fail. Nothing outside the root is ever read, written, created, renamed,
// locked or removed through one.
//
// On Linux, Get resolves its path in one openat2 call with RESOLVE_BENEATH,
// RESOLVE_NO_SYMLINKS and RESOLVE_NO_MAGICLINKS, which costs what a plain open
// costs, so a hit stays one open, fstat, read and close. Writes do the same for the
// fan-out directory (and Swap for its lock file), then create, rename and remove
// names in it with the *at calls on that descriptor, which never follow a link in
// the last component, so a Set costs what a careful write by hand does. Elsewhere
// (and on Linux before 5.6, or where a sandbox filters openat2) they take the walk
// above, about three system calls per directory more.
//
// The one path-based call left is fsnotify's watch on a fan-out directory, made after
// checking that the directory is real: were it swapped for a symlink in between, the
// watch would only see another directory's events, which wake waiters for nothing.
//
// # Portability
//
// The package builds and runs on every system with os.Root and a file lock: Unix
// systems (flock) and Windows (LockFileEx on the lock file's handle). scripts/crosscheck
// vets it for Windows, macOS and the BSDs.
package filestore
