package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachier-go/cachier/store"
)

// ErrCorrupt reports an entry file that is truncated, damaged or not an entry at all.
// It is store.ErrCorrupt, kept here for callers of this package. Get returns it wrapped
// together with store.ErrNotFound, so that cachier treats the entry as a miss and can
// still count the corruption apart from ordinary misses.
var ErrCorrupt = store.ErrCorrupt

// Compile-time checks of the interfaces Store implements.
var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
	_ store.Locator  = (*Store)(nil)
)

// tempMaxAge is how old a temporary file must be before Clear and DeleteBefore take it
// for a crashed writer's leftover and remove it. A live writer holds its temporary
// file for far less.
const tempMaxAge = time.Minute

// DefaultPollInterval is the longest wait between two checks of a watched key when
// file-system notifications are unavailable.
const DefaultPollInterval = 250 * time.Millisecond

// Options configures a Store. A nil *Options, like the zero Options, means defaults.
type Options struct {
	// Dir is the root directory. Empty means DefaultDir(). It is created (mode 0700)
	// if missing.
	Dir string
	// Fsync makes Set (and lease changes) fsync the file and its directory before
	// returning, so that an entry survives a power loss, at a large cost in speed.
	// Without it an entry survives any crash of the process, but not of the machine.
	Fsync bool
	// Clock tells the time for lease expiry. Nil means time.Now.
	Clock func() time.Time
	// Logger receives reports of corrupt files and other trouble the caller does not
	// see as an error. Nil discards them (cachier logs the errors it is returned).
	Logger *slog.Logger
	// PollInterval is the longest wait between two checks of a watched key when
	// file-system notifications cannot be used. Zero means DefaultPollInterval.
	PollInterval time.Duration
	// AllowSharedDir allows a root directory that other users can write to or that
	// another user owns. Such a directory lets them plant entries, so it is refused
	// by default.
	AllowSharedDir bool
}

// Store keeps entries and leases in files under one root directory. It is safe for
// concurrent use by goroutines and by processes sharing the directory.
type Store struct {
	root         string
	fsync        bool
	clock        func() time.Time
	log          *slog.Logger
	pollInterval time.Duration

	nsDirs sync.Map // namespace -> nsInfo, memoizing nsDirName

	watch     watchState
	forcePoll bool // test hook: use polling instead of fsnotify
}

// nsInfo caches the directory name of a namespace.
type nsInfo struct {
	dir    string // absolute path of the namespace directory
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
	var o Options
	if opts != nil {
		o = *opts
	}
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
	if !o.AllowSharedDir {
		if err := checkPrivate(root); err != nil {
			return nil, err
		}
	}
	s := &Store{
		root:         root,
		fsync:        o.Fsync,
		clock:        o.Clock,
		log:          o.Logger,
		pollInterval: o.PollInterval,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.pollInterval <= 0 {
		s.pollInterval = DefaultPollInterval
	}
	return s, nil
}

// checkPrivate refuses a root that another user could write into.
func checkPrivate(root string) error {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: root, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("filestore: root %s is not a directory", root)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("filestore: root %s is writable by group or others (mode %o); "+
			"chmod go-w it or set Options.AllowSharedDir", root, st.Mode&0o777)
	}
	if uid := os.Getuid(); int(st.Uid) != uid {
		return fmt.Errorf("filestore: root %s is owned by uid %d, not by this process (uid %d); "+
			"set Options.AllowSharedDir to use it anyway", root, st.Uid, uid)
	}
	return nil
}

// Root returns the root directory.
func (s *Store) Root() string { return s.root }

// Dir returns the directory that holds the namespace's entries (store.Locator).
func (s *Store) Dir(namespace string) string { return s.ns(namespace).dir }

func (s *Store) now() time.Time { return s.clock() }

// ns returns the directory of a namespace.
func (s *Store) ns(namespace string) nsInfo {
	if v, ok := s.nsDirs.Load(namespace); ok {
		return v.(nsInfo)
	}
	name, hashed := nsDirName(namespace)
	info := nsInfo{dir: s.root + "/" + name, hashed: hashed}
	s.nsDirs.Store(namespace, info)
	return info
}

// paths returns the fan-out directory of k and the entry's file name.
func (s *Store) paths(k store.Key) (dir, name string) {
	name = entryName(k.ID)
	return s.ns(k.Namespace).dir + "/" + name[:2], name
}

// ensureDirs creates the namespace directory (with its .namespace file when the name
// is hashed) and the fan-out directory dir.
func (s *Store) ensureDirs(namespace, dir string) error {
	info := s.ns(namespace)
	if err := mkdirPrivate(info.dir); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if info.hashed {
		meta := info.dir + "/" + metaName
		if _, err := os.Lstat(meta); err != nil {
			if err := s.writeFile(info.dir, meta, []byte(namespace)); err != nil {
				return err
			}
		}
	}
	if err := mkdirPrivate(dir); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	return nil
}

// writeFile atomically replaces path (in directory dir) with data: it writes a
// temporary file in the same directory and renames it over path, so that a reader
// sees the old file or the new one, never a part. The caller creates dir.
func (s *Store) writeFile(dir, path string, data []byte) error {
	fd, tmp, err := createTemp(dir)
	if err != nil {
		return err
	}
	err = writeFull(fd, data)
	if err == nil && s.fsync {
		err = unix.Fsync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Rename(tmp, path)
	}
	if err != nil {
		_ = unix.Unlink(tmp)
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	if s.fsync {
		return syncDir(dir)
	}
	return nil
}

// writeKeyFile writes a file in k's fan-out directory, creating the directories on
// first use.
func (s *Store) writeKeyFile(k store.Key, dir, path string, data []byte) error {
	err := s.writeFile(dir, path, data)
	if err != nil && isNotExist(err) {
		if err := s.ensureDirs(k.Namespace, dir); err != nil {
			return err
		}
		err = s.writeFile(dir, path, data)
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
	if err := ctx.Err(); err != nil {
		return store.Entry{}, err
	}
	if err := k.Validate(); err != nil {
		return store.Entry{}, err
	}
	dir, name := s.paths(k)
	path := dir + "/" + name
	data, err := readRecordFile(path)
	switch {
	case err == nil:
	case isNotExist(err):
		return store.Entry{}, fmt.Errorf("filestore: %s: %w", k, store.ErrNotFound)
	case errors.Is(err, unix.ELOOP), errors.Is(err, errNotRegular), errors.Is(err, errFormat):
		return store.Entry{}, s.corrupt(path, err)
	default:
		return store.Entry{}, fmt.Errorf("filestore: get %s: %w", k, err)
	}
	id, e, err := decodeEntry(data)
	if err != nil {
		return store.Entry{}, s.corrupt(path, err)
	}
	if id != k.ID {
		// Only a file copied from elsewhere or a 128-bit hash collision gets here.
		return store.Entry{}, s.corrupt(path, fmt.Errorf("file holds id %q, want %q", id, k.ID))
	}
	return e, nil
}

// Set stores e under k, atomically replacing any previous entry. Values over
// MaxValueSize fail with an error matching store.ErrTooLarge.
func (s *Store) Set(ctx context.Context, k store.Key, e store.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.Validate(); err != nil {
		return err
	}
	if len(e.Value) > MaxValueSize {
		return fmt.Errorf("filestore: set %s: %w: %d bytes, at most %d", k, store.ErrTooLarge, len(e.Value), MaxValueSize)
	}
	dir, name := s.paths(k)
	data := encodeRecord(magicEntry, e.StoredAt, k.ID, e.Value)
	if err := s.writeKeyFile(k, dir, dir+"/"+name, data); err != nil {
		return fmt.Errorf("filestore: set %s: %w", k, err)
	}
	return nil
}

// Delete removes the entry for k; a missing entry is not an error.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.Validate(); err != nil {
		return err
	}
	dir, name := s.paths(k)
	if err := unix.Unlink(dir + "/" + name); err != nil && !isNotExist(err) {
		return fmt.Errorf("filestore: delete %s: %w", k, &fs.PathError{Op: "unlink", Path: dir + "/" + name, Err: err})
	}
	return nil
}

// fanouts returns the fan-out directories of a namespace; none if it has no directory.
func (s *Store) fanouts(namespace string) ([]string, error) {
	nsDir := s.ns(namespace).dir
	des, err := os.ReadDir(nsDir)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var dirs []string
	for _, de := range des {
		// DirEntry.IsDir does not follow symlinks, so a planted link is skipped.
		if de.IsDir() && isFanoutName(de.Name()) {
			dirs = append(dirs, nsDir+"/"+de.Name())
		}
	}
	return dirs, nil
}

// readNames lists the names in dir; a missing dir has none.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	return names, nil
}

// removeStaleTemp removes path if it is a temporary file older than tempMaxAge. File
// times come from the file system, so this uses the real time, not the Clock.
func removeStaleTemp(path string) {
	fi, err := os.Lstat(path)
	if err == nil && time.Since(fi.ModTime()) > tempMaxAge {
		_ = os.Remove(path)
	}
}

// Clear removes every entry of the namespace, and leftover temporary files older than
// a minute. Leases are left alone. A cancelled ctx stops it part way.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.ValidateNamespace(namespace); err != nil {
		return err
	}
	dirs, err := s.fanouts(namespace)
	if err != nil {
		return fmt.Errorf("filestore: clear %q: %w", namespace, err)
	}
	for _, dir := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, err := readNames(dir)
		if err != nil {
			return fmt.Errorf("filestore: clear %q: %w", namespace, err)
		}
		for _, n := range names {
			switch {
			case isEntryName(n):
				if err := unix.Unlink(dir + "/" + n); err != nil && !isNotExist(err) {
					return fmt.Errorf("filestore: clear %q: %w", namespace, &fs.PathError{Op: "unlink", Path: dir + "/" + n, Err: err})
				}
			case strings.HasPrefix(n, tmpPrefix):
				removeStaleTemp(dir + "/" + n)
			}
		}
	}
	return nil
}

// readHead reads the header and ID of a record file, and checks that the file's size
// matches the header. It does not read the value or verify the checksum.
func readHead(path string, magic [4]byte) (header, string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return header{}, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return header{}, "", err
	}
	if !fi.Mode().IsRegular() {
		return header{}, "", &fs.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	buf := make([]byte, headerSize+store.MaxIDLen)
	n, err := readFull(int(f.Fd()), buf)
	if err != nil {
		return header{}, "", &fs.PathError{Op: "read", Path: path, Err: err}
	}
	h, err := decodeHeader(buf[:n], magic)
	if err != nil {
		return h, "", err
	}
	if uint64(fi.Size()) != h.size() || n < headerSize+int(h.idLen) {
		return h, "", fmt.Errorf("%w: %d bytes, header says %d", errFormat, fi.Size(), h.size())
	}
	return h, string(buf[headerSize : headerSize+int(h.idLen)]), nil
}

// DeleteBefore removes the entries of the namespace stored before t, reading only each
// file's header, and returns how many it removed. It also removes files that are not
// valid entries (without counting them) and temporary files older than a minute.
//
// An entry replaced by a concurrent Set between the header read and the removal is
// removed too; that costs a miss, never a wrong value.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := store.ValidateNamespace(namespace); err != nil {
		return 0, err
	}
	dirs, err := s.fanouts(namespace)
	if err != nil {
		return 0, fmt.Errorf("filestore: delete before in %q: %w", namespace, err)
	}
	removed := 0
	for _, dir := range dirs {
		names, err := readNames(dir)
		if err != nil {
			return removed, fmt.Errorf("filestore: delete before in %q: %w", namespace, err)
		}
		for _, n := range names {
			if err := ctx.Err(); err != nil {
				return removed, err
			}
			path := dir + "/" + n
			if strings.HasPrefix(n, tmpPrefix) {
				removeStaleTemp(path)
				continue
			}
			if !isEntryName(n) {
				continue
			}
			h, _, err := readHead(path, magicEntry)
			switch {
			case err == nil && !h.t.Before(t):
				continue
			case err == nil:
				if err := unix.Unlink(path); err == nil {
					removed++
				}
			case isNotExist(err):
			case errors.Is(err, errFormat), errors.Is(err, errNotRegular), errors.Is(err, unix.ELOOP):
				s.log.Warn("filestore: removing corrupt file", "path", path, "err", err)
				_ = unix.Unlink(path)
			default:
				return removed, fmt.Errorf("filestore: delete before in %q: %w", namespace, err)
			}
		}
	}
	return removed, nil
}

// Entries lists the entries of the namespace from their headers, without reading
// values. Files that are not valid entries are logged and skipped.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(store.Info{}, err)
			return
		}
		if err := store.ValidateNamespace(namespace); err != nil {
			yield(store.Info{}, err)
			return
		}
		dirs, err := s.fanouts(namespace)
		if err != nil {
			yield(store.Info{}, fmt.Errorf("filestore: entries of %q: %w", namespace, err))
			return
		}
		for _, dir := range dirs {
			names, err := readNames(dir)
			if err != nil {
				yield(store.Info{}, fmt.Errorf("filestore: entries of %q: %w", namespace, err))
				return
			}
			for _, n := range names {
				if err := ctx.Err(); err != nil {
					yield(store.Info{}, err)
					return
				}
				if !isEntryName(n) {
					continue
				}
				path := dir + "/" + n
				h, id, err := readHead(path, magicEntry)
				switch {
				case err == nil:
				case isNotExist(err):
					continue
				case errors.Is(err, errFormat), errors.Is(err, errNotRegular), errors.Is(err, unix.ELOOP):
					s.log.Warn("filestore: skipping corrupt file", "path", path, "err", err)
					continue
				default:
					if !yield(store.Info{}, fmt.Errorf("filestore: entries of %q: %w", namespace, err)) {
						return
					}
					continue
				}
				if entryName(id) != n {
					// A file moved here from elsewhere: Get would refuse it too.
					s.log.Warn("filestore: skipping misplaced file", "path", path, "id", id)
					continue
				}
				info := store.Info{
					Key:      store.Key{Namespace: namespace, ID: id},
					Size:     int64(h.payloadLen),
					StoredAt: h.t,
				}
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// Namespaces lists the namespaces that have at least one entry or lease file.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(s.root)
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
			b, err := os.ReadFile(s.root + "/" + name + "/" + metaName)
			if err != nil {
				continue // not a namespace directory of ours
			}
			ns = string(b)
			if want, _ := nsDirName(ns); want != name || store.ValidateNamespace(ns) != nil {
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
	dirs, err := s.fanouts(namespace)
	if err != nil {
		return false, err
	}
	for _, dir := range dirs {
		names, err := readNames(dir)
		if err != nil {
			return false, err
		}
		for _, n := range names {
			if isEntryName(n) || isLeaseName(n) {
				return true, nil
			}
		}
	}
	return false, nil
}

// Close stops the file-system watcher, if one was started. The files stay.
func (s *Store) Close() error {
	return s.watch.close()
}
