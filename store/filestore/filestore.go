package filestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/store"
)

// ErrCorrupt reports an entry file that is truncated, damaged or not an entry at all.
// It is store.ErrCorrupt, kept here for callers of this package. Get returns it wrapped
// together with store.ErrNotFound, so that cachier treats the entry as a miss and can
// still count the corruption apart from ordinary misses.
var ErrCorrupt = store.ErrCorrupt

// tempMaxAge is how old a temporary file must be before Clear and DeleteBefore take it
// for a crashed writer's leftover and remove it. A live writer holds its temporary
// file for far less.
const tempMaxAge = time.Minute

// DefaultPollInterval is kept for compatibility. Waiters poll in cachier now, with its
// own backoff, when notifications are unavailable.
//
// Deprecated: Options.PollInterval is ignored.
const DefaultPollInterval = 250 * time.Millisecond

// Options configures a Store. A nil *Options, like the zero Options, means defaults.
type Options struct {
	// Dir is the root directory. Empty means DefaultDir(). It is created (mode 0700)
	// if missing.
	Dir string
	// Fsync makes Set (and record swaps) fsync the file and its directory before
	// returning, so that an entry survives a power loss, at a large cost in speed.
	// Without it an entry survives any crash of the process, but not of the machine.
	Fsync bool
	// Clock tells the time of the recency stamps that MaxEntries and MaxBytes evict
	// by. Nil means time.Now. (Leases expire by the clock of package store's
	// portable layer: store.WithClock.)
	Clock func() time.Time
	// Logger receives reports of corrupt files and other trouble the caller does not
	// see as an error. Nil discards them (cachier logs the errors it is returned).
	Logger *slog.Logger
	// PollInterval is ignored: without file-system notifications, Watch reports
	// errors.ErrUnsupported and cachier polls with its own backoff.
	//
	// Deprecated: it has no effect.
	PollInterval time.Duration
	// AllowSharedDir allows a root directory that other users can write to or that
	// another user owns. Such a directory lets them plant entries, so it is refused
	// by default.
	AllowSharedDir bool
	// MaxBytes caps the total size of the entry files under the root, and MaxEntries
	// their number, across every namespace and every process sharing the directory:
	// past a cap, the least recently used entries are evicted (see Sweep). Zero means
	// no cap, the default.
	MaxBytes   int64
	MaxEntries int
}

// Store keeps entries and leases in files under one root directory. It is safe for
// concurrent use by goroutines and by processes sharing the directory.
type Store struct {
	root     atomic.Pointer[rootDir] // replaced by recoverRoot if the directory is removed
	rootPath string                  // absolute
	fsync    bool

	rootMu        sync.Mutex // serializes recoverRoot and Close
	nextRootCheck time.Time  // when a miss may next look for a removed root
	allowShared   bool
	syncs         atomic.Int64 // fsync calls made, for the tests
	log           *slog.Logger
	clock         func() time.Time

	nsDirs sync.Map // namespace -> nsInfo, memoizing nsDirName

	watch     watchState
	forcePoll bool // test hook: use polling instead of fsnotify

	caps *caps // eviction (MaxBytes, MaxEntries); nil without a cap
}

// nsInfo caches the directory name of a namespace.
type nsInfo struct {
	dir    string // the namespace directory, relative to the root
	hashed bool
}

// DefaultDir returns the directory used when Options.Dir is empty:
// $XDG_CACHE_HOME/cachier if XDG_CACHE_HOME is set to an absolute path, else
// ~/.cachier (the directory Python's cachier uses).
func DefaultDir() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "cachier"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("filestore: no cache directory: %w", err)
	}
	return filepath.Join(home, ".cachier"), nil
}

// New opens (creating if needed) a file store.
func New(opts *Options) (*Store, error) {
	o := store.OptionsOf(opts)
	if o.Dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return nil, err
		}
		o.Dir = d
	}
	root, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: root %q: %w", o.Dir, err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: create root: %w", err)
	}
	rd, err := openRootDir(root)
	if err != nil {
		return nil, fmt.Errorf("filestore: root: %w", err)
	}
	if !o.AllowSharedDir {
		if err := checkPrivate(rd.r, root); err != nil {
			rd.close()
			return nil, err
		}
	}
	c, err := newCaps(o)
	if err != nil {
		rd.close()
		return nil, err
	}
	s := &Store{
		caps:        c,
		rootPath:    root,
		fsync:       o.Fsync,
		log:         cmp.Or(o.Logger, slog.New(slog.DiscardHandler)),
		clock:       o.Clock,
		allowShared: o.AllowSharedDir,
	}
	s.root.Store(rd)
	if s.clock == nil {
		s.clock = time.Now
	}
	return s, nil
}

// Root returns the root directory.
func (s *Store) Root() string { return s.rootPath }

func (s *Store) now() time.Time { return s.clock() }

var _ store.Locator = (*Store)(nil)

// Dir returns the directory that holds the namespace's entries (store.Locator).
func (s *Store) Dir(namespace string) string { return s.abs(s.ns(namespace).dir) }

// ns returns the directory of a namespace.
func (s *Store) ns(namespace string) nsInfo {
	if v, ok := s.nsDirs.Load(namespace); ok {
		return v.(nsInfo)
	}
	name, hashed := nsDirName(namespace)
	info := nsInfo{dir: name, hashed: hashed}
	s.nsDirs.Store(namespace, info)
	return info
}

// paths returns the fan-out directory of k, relative to the root, and the entry's
// file name in it.
func (s *Store) paths(k store.Key) (dir, name string) {
	rel := s.relPath(k)
	return rel[:len(rel)-entryNameLen-1], rel[len(rel)-entryNameLen:]
}

// relPath returns the path of k's file relative to the root, in one allocation: a
// miss resolves ten paths or so (its entry's, its lease's and a counter's, each read
// and written), and building each from parts cost five.
func (s *Store) relPath(k store.Key) string {
	ns := s.ns(k.Namespace).dir
	var name [entryNameLen]byte
	hexName(&name, k.ID)
	var b strings.Builder
	b.Grow(len(ns) + 4 + entryNameLen)
	b.WriteString(ns)
	b.WriteByte('/')
	b.Write(name[:2])
	b.WriteByte('/')
	b.Write(name[:])
	return b.String()
}

// ensureDirs creates the namespace directory (with its .namespace file when the name
// is hashed) and the fan-out directory dir, all beneath the root; a symlink in their
// place is an error.
func (s *Store) ensureDirs(namespace, dir string) error {
	info := s.ns(namespace)
	if err := s.mkdir(info.dir); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if info.hashed {
		if _, err := s.lstat(joinRel(info.dir, metaName)); err != nil {
			if err := s.writeFile(info.dir, metaName, []byte(namespace)); err != nil {
				return err
			}
		}
	}
	if err := s.mkdir(dir); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	return nil
}

// writeKeyFile writes the file name in k's fan-out directory dir, creating the
// directories on first use.
func (s *Store) writeKeyFile(k store.Key, dir, name string, data []byte) error {
	err := s.writeFile(dir, name, data)
	if err != nil && isNotExist(err) {
		if err := s.ensureDirsRecover(k.Namespace, dir); err != nil {
			return err
		}
		err = s.writeFile(dir, name, data)
	}
	return err
}

// corrupt builds the error Get returns for a file that is not a valid entry, and logs
// it.
func (s *Store) corrupt(path string, cause error) error {
	s.log.Warn("filestore: corrupt file", "path", path, "err", cause)
	return fmt.Errorf("%w %s: %v: %w", ErrCorrupt, path, cause, store.ErrNotFound)
}

// Get returns the entry for k. A missing entry is an error matching store.ErrNotFound;
// a damaged one matches both store.ErrNotFound and ErrCorrupt. The entry's Value is a
// fresh slice the caller owns.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	rel := s.relPath(k)
	dir, name := splitRel(rel)
	data, err := s.readRecord(rel)
	if err != nil && isNotExist(err) && s.recoverRoot(false) {
		data, err = s.readRecord(rel) // the root was removed or replaced: read the new one
	}
	if err != nil && !isNotExist(err) {
		err = &fs.PathError{Op: "open", Path: s.abs(rel), Err: err}
	}
	switch {
	case err == nil:
	case isNotExist(err):
		return store.Entry{}, store.NotFound(k)
	case isRefused(err), errors.Is(err, errFormat):
		// A symlink anywhere on the path (namespace or fan-out directory, or the
		// entry itself) is refused, never followed, and reads as a damaged entry.
		return store.Entry{}, s.corrupt(s.abs(rel), err)
	default:
		return store.Entry{}, fmt.Errorf("filestore: get %s: %w", k, err)
	}
	id, e, err := decodeEntry(data)
	if err != nil {
		return store.Entry{}, s.corrupt(s.abs(rel), err)
	}
	if id != k.ID {
		// Only a file copied from elsewhere or a 128-bit hash collision gets here.
		return store.Entry{}, s.corrupt(s.abs(rel), fmt.Errorf("file holds id %q, want %q", id, k.ID))
	}
	if s.caps != nil {
		s.touch(dir, name) // recency, for eviction
	}
	return e, nil
}

// Set stores e under k, atomically replacing any previous entry. Values over
// MaxValueSize fail with an error matching store.ErrTooLarge.
func (s *Store) Set(ctx context.Context, k store.Key, e store.Entry) error {
	if len(e.Value) > MaxValueSize {
		return fmt.Errorf("filestore: set %s: %w: %d bytes, at most %d", k, store.ErrTooLarge, len(e.Value), MaxValueSize)
	}
	dir, name := s.paths(k)
	data := encodeRecord(e.StoredAt, e.ExpiresAt, k.ID, e.Value)
	if err := s.writeKeyFile(k, dir, name, data); err != nil {
		return fmt.Errorf("filestore: set %s: %w", k, err)
	}
	if s.caps != nil {
		s.afterSet(dir, name, len(data))
	}
	return nil
}

// Delete removes the entry for k; a missing entry is not an error.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	dir, name := s.paths(k)
	err := s.remove(dir, name)
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("filestore: delete %s: %w", k, err)
	}
	return nil
}

// fanouts returns the fan-out directories of a namespace, relative to the root; none
// if it has no directory. Only real directories count: a symlink where the namespace
// directory should be is an error, and symlinks among the fan-outs are skipped.
func (s *Store) fanouts(namespace string) ([]string, error) {
	nsDir := s.ns(namespace).dir
	var dirs []string
	err := s.inDir(nsDir, func(d *os.Root) error {
		des, err := readDir(d)
		if err != nil {
			return err
		}
		for _, de := range des {
			// DirEntry.IsDir does not follow symlinks, so a planted link is skipped.
			if de.IsDir() && isFanoutName(de.Name()) {
				dirs = append(dirs, nsDir+"/"+de.Name())
			}
		}
		return nil
	})
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	return dirs, nil
}

// errStop ends a walk early without an error.
var errStop = errors.New("stop")

// walk calls fn with every name in every fan-out directory of the namespace, the
// directory (relative to the root), and d to act on the name through. A directory
// that has gone is empty. It stops at ctx's end and at fn's first error; errStop ends
// it without one.
func (s *Store) walk(ctx context.Context, namespace string, fn func(d *os.Root, dir, name string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dirs, err := s.fanouts(namespace)
	for _, dir := range dirs {
		if err != nil {
			break
		}
		err = s.inDir(dir, func(d *os.Root) error {
			des, err := readDir(d)
			for _, de := range des {
				if err == nil {
					err = ctx.Err()
				}
				if err == nil {
					err = fn(d, dir, de.Name())
				}
			}
			return err
		})
		if isNotExist(err) {
			err = nil
		}
	}
	if err == errStop {
		return nil
	}
	return err
}

// wrapWalk wraps a walk's error for op, leaving ctx's own error as it is.
func wrapWalk(ctx context.Context, err error, op, namespace string) error {
	if err == nil || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("filestore: %s %q: %w", op, namespace, err)
}

// Clear removes every entry of the namespace, and leftover temporary files older than
// a minute. Leases are left alone. A cancelled ctx stops it part way.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	return wrapWalk(ctx, s.walk(ctx, namespace, func(d *os.Root, _, n string) error {
		switch {
		case isEntryName(n):
			if err := d.Remove(n); err != nil && !isNotExist(err) {
				return err
			}
		case strings.HasPrefix(n, tmpPrefix):
			removeStaleTemp(d, n)
		}
		return nil
	}), "clear", namespace)
}

// readHead reads the header and ID of the record file name in d, and checks that the
// file's size matches the header. It does not read the value or verify the checksum,
// and does not follow a symlink.
func readHead(d *os.Root, name string) (header, string, error) {
	f, err := openFile(d, name, os.O_RDONLY)
	if err != nil {
		return header{}, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return header{}, "", err
	}
	buf := make([]byte, headerSize+extExpiry+store.MaxIDLen)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return header{}, "", err
	}
	h, err := decodeHeader(buf[:n])
	if err != nil {
		return h, "", err
	}
	if uint64(fi.Size()) != h.size() || n < h.idStart()+int(h.idLen) {
		return h, "", fmt.Errorf("%w: %d bytes, header says %d", errFormat, fi.Size(), h.size())
	}
	return h, string(buf[h.idStart() : h.idStart()+int(h.idLen)]), nil
}

// DeleteBefore removes the entries of the namespace stored before t, reading only each
// file's header, and returns how many it removed. It also removes files that are not
// valid entries (without counting them) and temporary files older than a minute.
//
// An entry replaced by a concurrent Set between the header read and the removal is
// removed too; that costs a miss, never a wrong value.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	return s.deleteWhere(ctx, namespace, func(h header) bool { return h.t.Before(t) })
}

// DeleteExpired implements store.ExpiryCleaner: it removes the entries of the
// namespace whose ExpiresAt is at or before now, reading only each file's header, as
// DeleteBefore does.
func (s *Store) DeleteExpired(ctx context.Context, namespace string, now time.Time) (int, error) {
	return s.deleteWhere(ctx, namespace, func(h header) bool { return !h.exp.IsZero() && !now.Before(h.exp) })
}

// deleteWhere removes the entries of the namespace whose header drop accepts.
func (s *Store) deleteWhere(ctx context.Context, namespace string, drop func(header) bool) (int, error) {
	removed := 0
	err := s.walk(ctx, namespace, func(d *os.Root, dir, n string) error {
		if strings.HasPrefix(n, tmpPrefix) {
			removeStaleTemp(d, n)
			return nil
		}
		if !isEntryName(n) {
			return nil
		}
		h, _, err := readHead(d, n)
		switch {
		case err == nil && !drop(h):
		case err == nil:
			if err := d.Remove(n); err == nil {
				removed++
			}
		case isNotExist(err):
		case errors.Is(err, errFormat), isRefused(err):
			s.log.Warn("filestore: removing corrupt file", "path", s.abs(dir+"/"+n), "err", err)
			_ = d.Remove(n)
		default:
			return &fs.PathError{Op: "read", Path: s.abs(dir + "/" + n), Err: err}
		}
		return nil
	})
	return removed, wrapWalk(ctx, err, "delete before in", namespace)
}

var _ store.Lister = (*Store)(nil)

// Entries lists the entries of the namespace from their headers, without reading
// values. Files that are not valid entries are logged and skipped.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		err := s.walk(ctx, namespace, func(d *os.Root, dir, n string) error {
			if !isEntryName(n) {
				return nil
			}
			path := s.abs(dir + "/" + n)
			h, id, err := readHead(d, n)
			switch {
			case err == nil && entryName(id) != n:
				// A file moved here from elsewhere: Get would refuse it too.
				s.log.Warn("filestore: skipping misplaced file", "path", path, "id", id)
			case err == nil:
				info := store.Info{Key: store.Key{Namespace: namespace, ID: id}, Size: int64(h.payloadLen), StoredAt: h.t, ExpiresAt: h.exp}
				if !yield(info, nil) {
					return errStop
				}
			case isNotExist(err):
			case errors.Is(err, errFormat), isRefused(err):
				s.log.Warn("filestore: skipping corrupt file", "path", path, "err", err)
			default:
				err = fmt.Errorf("filestore: entries of %q: %w", namespace, &fs.PathError{Op: "read", Path: path, Err: err})
				if !yield(store.Info{}, err) {
					return errStop
				}
			}
			return nil
		})
		if err != nil {
			yield(store.Info{}, wrapWalk(ctx, err, "entries of", namespace))
		}
	}
}

// Namespaces lists the namespaces that have at least one entry or lease file.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var des []fs.DirEntry
	err := s.inDir("", func(d *os.Root) (err error) {
		des, err = readDir(d)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("filestore: namespaces: %w", err)
	}
	var out []string
	for _, de := range des {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := de.Name()
		if !de.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		ns, ok := decodeNSDirName(name)
		if !ok {
			b, err := s.readMeta(name)
			if err != nil {
				continue // not a namespace directory of ours
			}
			ns = string(b)
			if want, _ := nsDirName(ns); want != name || !storedNamespace(ns) {
				s.log.Warn("filestore: namespace file does not match its directory", "dir", name)
				continue
			}
		}
		has, err := s.hasFiles(ns)
		if err != nil {
			return nil, fmt.Errorf("filestore: namespaces: %w", err)
		}
		if has {
			out = append(out, ns)
		}
	}
	return out, nil
}

// hasFiles reports whether a namespace holds any entry or lease file.
func (s *Store) hasFiles(namespace string) (bool, error) {
	has := false
	err := s.walk(context.Background(), namespace, func(_ *os.Root, _, n string) error {
		if has = isEntryName(n); has {
			return errStop
		}
		return nil
	})
	return has, err
}

// readMeta reads the .namespace file of the namespace directory dir, beneath the root.
func (s *Store) readMeta(dir string) (b []byte, err error) {
	err = s.inDir(dir, func(d *os.Root) error {
		b, err = readFile(d, metaName, store.MaxNamespaceLen)
		return err
	})
	return b, err
}

// Close stops the file-system watcher, if one was started, and closes the root
// directory; later calls fail. The files stay.
func (s *Store) Close() error {
	err := s.watch.close()
	s.rootMu.Lock()
	if rd := s.root.Swap(nil); rd != nil {
		rd.close()
	}
	s.rootMu.Unlock()
	return err
}

// storedNamespace reports whether ns is a namespace this store may hold: one within
// the contract, or one of package store's own ("\x01" and "\x01"+namespace).
func storedNamespace(ns string) bool {
	if rest, ok := strings.CutPrefix(ns, store.InternalPrefix); ok {
		return rest == "" || store.ValidateNamespace(rest) == nil
	}
	return store.ValidateNamespace(ns) == nil
}
