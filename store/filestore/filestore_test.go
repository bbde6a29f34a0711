package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
	"github.com/cachier-go/cachier/store/storetest"
)

func newStore(t testing.TB, o *filestore.Options) *filestore.Store {
	t.Helper()
	if o == nil {
		o = &filestore.Options{}
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := filestore.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustSet(t testing.TB, s store.Driver, k store.Key, v string) {
	t.Helper()
	if err := s.Set(context.Background(), k, store.Entry{Value: []byte(v), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptEntries damages an entry file in every way a crash, a disk or a stray
// program could, and checks that Get reports a corrupt miss and never a value.
func TestCorruptEntries(t *testing.T) {
	ctx := context.Background()
	k := store.Key{Namespace: "ns", ID: "key"}
	const value = "the one true value, long enough to be worth truncating"
	damage := map[string]func(b []byte) []byte{
		"truncated":     func(b []byte) []byte { return b[:len(b)-3] },
		"header only":   func(b []byte) []byte { return b[:36] },
		"half a header": func(b []byte) []byte { return b[:10] },
		"zero length":   func([]byte) []byte { return nil },
		"flipped value": func(b []byte) []byte { b[len(b)-5] ^= 0x10; return b },
		"flipped id":    func(b []byte) []byte { b[36] ^= 1; return b },
		"flipped time":  func(b []byte) []byte { b[12] ^= 1; return b },
		"flipped crc":   func(b []byte) []byte { b[35] ^= 0xff; return b },
		"flipped magic": func(b []byte) []byte { b[0] = 'X'; return b },
		"foreign bytes": func([]byte) []byte { return []byte("PK\x03\x04 a zip file, or anything else entirely") },
		"appended":      func(b []byte) []byte { return append(b, "more"...) },
		"zeroed":        func(b []byte) []byte { return make([]byte, len(b)) },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			s := newStore(t, nil)
			mustSet(t, s, k, value)
			path := filestore.EntryPath(s, k)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f(b), 0o600); err != nil {
				t.Fatal(err)
			}
			e, err := s.Get(ctx, k)
			if err == nil {
				t.Fatalf("Get of a damaged file returned %q", e.Value)
			}
			if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, filestore.ErrCorrupt) {
				t.Fatalf("Get = %v; want an error matching store.ErrNotFound and ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
			// The key stays usable.
			mustSet(t, s, k, "new")
			if e, err := s.Get(ctx, k); err != nil || string(e.Value) != "new" {
				t.Fatalf("Get after rewriting = %q, %v", e.Value, err)
			}
		})
	}
}

// TestEntryFileSwapped puts one key's valid file in another key's place: the ID kept
// inside the file must stop it from being served as the other key's value.
func TestEntryFileSwapped(t *testing.T) {
	s := newStore(t, nil)
	a, b := store.Key{Namespace: "ns", ID: "a"}, store.Key{Namespace: "ns", ID: "b"}
	mustSet(t, s, a, "value of a")
	pb := filestore.EntryPath(s, b)
	if err := os.MkdirAll(filepath.Dir(pb), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filestore.EntryPath(s, a), pb); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Get(context.Background(), b); !errors.Is(err, filestore.ErrCorrupt) {
		t.Fatalf("Get(b) with a's file = %q, %v; want ErrCorrupt", e.Value, err)
	}
}

// TestSymlinkNotFollowed plants a symlink where an entry should be.
func TestSymlinkNotFollowed(t *testing.T) {
	s := newStore(t, nil)
	k := store.Key{Namespace: "ns", ID: "k"}
	mustSet(t, s, k, "x")
	path := filestore.EntryPath(s, k)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("outside the root"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, path); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Get(context.Background(), k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get through a symlink = %q, %v; want a miss", e.Value, err)
	}
}

// TestKeysStayInside stores hostile IDs and namespaces and checks that every file the
// store created is under its root and that no internal file was replaced.
func TestKeysStayInside(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s := newStore(t, &filestore.Options{Dir: root})
	st := store.Adapt(s)
	hostile := []string{"..", "../..", "../../x", "/etc/passwd", ".", ".lock", ".namespace", ".tmp-1",
		"a/../../b", strings.Repeat("../", 66), strings.Repeat("ü", 100), "x.lease", "~", "%2E%2E"}
	for _, ns := range hostile {
		for _, id := range hostile {
			k := store.Key{Namespace: ns, ID: id}
			mustSet(t, s, k, ns+"|"+id)
			if _, err := st.Acquire(ctx, k, store.Owner{Host: "h", PID: 1, Token: "t"}, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ns := range hostile {
		for _, id := range hostile {
			k := store.Key{Namespace: ns, ID: id}
			e, err := s.Get(ctx, k)
			if err != nil || string(e.Value) != ns+"|"+id {
				t.Fatalf("Get(%q) = %q, %v", k, e.Value, err)
			}
		}
	}
	des, err := os.ReadDir(parent)
	if err != nil || len(des) != 1 || des[0].Name() != "root" {
		t.Fatalf("files appeared beside the root: %v %v", des, err)
	}
	got, err := st.Namespaces(ctx)
	if err != nil || len(got) != len(hostile) {
		t.Fatalf("Namespaces = %q, %v; want the %d hostile namespaces", got, err, len(hostile))
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if want := fs.FileMode(0o700); d.IsDir() && fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		if want := fs.FileMode(0o600); !d.IsDir() && fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStaleTempFiles checks that a crashed writer's temporary file is never listed and
// is removed by Clear once old.
func TestStaleTempFiles(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	k := store.Key{Namespace: "ns", ID: "k"}
	mustSet(t, s, k, "v")
	dir := filepath.Dir(filestore.EntryPath(s, k))
	old, fresh := filepath.Join(dir, ".tmp-crashed"), filepath.Join(dir, ".tmp-writing")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	n := 0
	for info, err := range s.Entries(ctx, "ns") {
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != k {
			t.Errorf("Entries listed %v", info.Key)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("Entries listed %d entries, want 1", n)
	}
	if removed, err := s.DeleteBefore(ctx, "ns", time.Now().Add(-time.Hour)); err != nil || removed != 0 {
		t.Fatalf("DeleteBefore = %d, %v", removed, err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DeleteBefore left the stale temporary file: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("DeleteBefore removed a temporary file a writer may still be using: %v", err)
	}
	if err := os.Chtimes(fresh, long, long); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Clear left the stale temporary file: %v", err)
	}
}

// TestDeleteBeforeCorrupt checks that DeleteBefore reads only headers and removes
// corrupt files without counting them.
func TestDeleteBeforeCorrupt(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"old", "new", "bad"} {
		k := store.Key{Namespace: "ns", ID: id}
		if err := s.Set(ctx, k, store.Entry{Value: []byte(id), StoredAt: base.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filestore.EntryPath(s, store.Key{Namespace: "ns", ID: "bad"}), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteBefore(ctx, "ns", base.Add(30*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("DeleteBefore = %d, %v; want 1", n, err)
	}
	for id, want := range map[string]bool{"old": false, "new": true, "bad": false} {
		_, err := os.Stat(filestore.EntryPath(s, store.Key{Namespace: "ns", ID: id}))
		if (err == nil) != want {
			t.Errorf("after DeleteBefore, file of %q exists = %v, want %v", id, err == nil, want)
		}
	}
}

func TestSharedDirRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := filestore.New(&filestore.Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "AllowSharedDir") {
		t.Fatalf("New on a world-writable dir = %v; want a refusal naming AllowSharedDir", err)
	}
	s, err := filestore.New(&filestore.Options{Dir: dir, AllowSharedDir: true})
	if err != nil {
		t.Fatalf("New with AllowSharedDir: %v", err)
	}
	s.Close()
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := filestore.DefaultDir(); err != nil || d != "/xdg/cachier" {
		t.Errorf("DefaultDir with XDG_CACHE_HOME = %q, %v", d, err)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/someone")
	if d, err := filestore.DefaultDir(); err != nil || d != "/home/someone/.cachier" {
		t.Errorf("DefaultDir = %q, %v", d, err)
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	for _, u := range []string{"file://" + dir, "file://" + dir + "?fsync=1", "file://localhost" + dir,
		"file://?fsync=true&poll=10ms", "file://", "FILE://" + dir + "/sub?allow_shared_dir=0"} {
		s, err := store.Open(ctx, u)
		if err != nil {
			t.Errorf("Open(%q): %v", u, err)
			continue
		}
		k := store.Key{Namespace: "n", ID: "i"}
		mustSet(t, s, k, "v")
		if _, err := s.Get(ctx, k); err != nil {
			t.Errorf("Open(%q): Get: %v", u, err)
		}
		s.Close()
	}
	for _, u := range []string{"file:relative/dir", "file://host/dir", "file://" + dir + "?fsnyc=1",
		"file://" + dir + "?fsync=maybe", "file://" + dir + "?poll=-1s", "file://user:pw@/x", "file://" + dir + "#frag",
		"file://" + dir + "?fsync=1&fsync=0"} {
		_, err := store.Open(ctx, u)
		if !errors.Is(err, store.ErrBadURL) || !strings.Contains(err.Error(), "file:///absolute/path") {
			t.Errorf("Open(%q) = %v; want ErrBadURL saying what is accepted", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("Open error leaks the password: %v", err)
		}
	}
}

// TestFsync: with Options.Fsync, Set syncs the file and its directory (two fsyncs);
// without it, none.
func TestFsync(t *testing.T) {
	ctx := context.Background()
	k := store.Key{Namespace: "ns", ID: "k"}
	v := bytes.Repeat([]byte("durable"), 1000)
	for _, on := range []bool{true, false} {
		s := newStore(t, &filestore.Options{Fsync: on})
		if err := s.Set(ctx, k, store.Entry{Value: v, StoredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if e, err := s.Get(ctx, k); err != nil || !bytes.Equal(e.Value, v) {
			t.Fatalf("Get = %d bytes, %v", len(e.Value), err)
		}
		switch n := filestore.Syncs(s); {
		case on && n < 2:
			t.Errorf("Fsync: Set made %d fsync calls, want the file's and the directory's", n)
		case !on && n != 0:
			t.Errorf("without Fsync, Set made %d fsync calls, want 0", n)
		}
	}
}

func TestLocator(t *testing.T) {
	s := newStore(t, nil)
	k := store.Key{Namespace: "pkg.fn", ID: "k"}
	mustSet(t, s, k, "v")
	if dir := s.Dir("pkg.fn"); !strings.HasPrefix(filestore.EntryPath(s, k), dir+"/") || filepath.Base(dir) != "pkg.fn" {
		t.Errorf("Dir = %q, entry at %q", dir, filestore.EntryPath(s, k))
	}
}

// TestCorruptLease checks that a damaged lease record never blocks a key.
func TestCorruptLease(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	st := store.Adapt(s)
	k := store.Key{Namespace: "ns", ID: "k"}
	if _, err := st.Acquire(ctx, k, store.Owner{Token: "a"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filestore.LeasePath(s, k), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	for l, err := range st.Leases(ctx, "ns") {
		t.Fatalf("Leases listed %v, %v from a corrupt file", l, err)
	}
	if _, err := st.Acquire(ctx, k, store.Owner{Token: "b"}, time.Hour); err != nil {
		t.Fatalf("Acquire over a corrupt lease: %v", err)
	}
}

// waitWake waits for a value on ch, failing after a generous deadline.
func waitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake-up after %s", what)
	}
}

// TestWatch: a watcher of a key, through the portable layer, wakes for every change
// of the entry and of its lease record, made by another Store on the same directory
// (another process would do the same).
func TestWatch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := store.Adapt(newStore(t, &filestore.Options{Dir: dir}))
	s := store.Adapt(newStore(t, &filestore.Options{Dir: dir})) // the writer: no local wake-ups
	k := store.Key{Namespace: "ns", ID: "k"}
	other := store.Key{Namespace: "ns", ID: "other"}
	ch, stop, err := w.(store.Notifier).Watch(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	steps := []struct {
		what string
		do   func() error
	}{
		{"Set", func() error { return s.Set(ctx, k, store.Entry{Value: []byte("1")}) }},
		{"second Set", func() error { return s.Set(ctx, k, store.Entry{Value: []byte("2")}) }},
		{"Delete", func() error { return s.Delete(ctx, k) }},
		{"Acquire", func() error { _, err := s.Acquire(ctx, k, store.Owner{Token: "t"}, time.Hour); return err }},
		{"ReleaseAll", func() error { _, err := s.ReleaseAll(ctx, "ns"); return err }},
	}
	for _, st := range steps {
		storetest.Drain(ch)
		// Another key in the same directory, touched first, must not be what wakes us:
		// give it a moment, then drain again.
		if err := s.Set(ctx, other, store.Entry{Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := st.do(); err != nil {
			t.Fatal(err)
		}
		waitWake(t, ch, st.what)
	}
	stop()
	stop() // idempotent
}

// Without file notifications, Watch says so, and the caller polls.
func TestWatchUnsupportedWithoutNotifications(t *testing.T) {
	s := newStore(t, nil)
	filestore.SetForcePolling(s, true)
	if _, _, err := s.Watch(context.Background(), store.Key{Namespace: "ns", ID: "k"}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Watch without notifications = %v, want errors.ErrUnsupported", err)
	}
}

// TestWatchMany checks that many waiters on one Store share the watcher, and that
// stopping them all leaves the Store usable.
func TestWatchMany(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	const n = 300 // more than the default limit of 128 inotify instances per user
	chans := make([]<-chan struct{}, n)
	stops := make([]func(), n)
	for i := range n {
		k := store.Key{Namespace: "ns", ID: string(rune('a' + i%5))}
		ch, stop, err := s.Watch(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		chans[i], stops[i] = ch, stop
	}
	for i := range 5 {
		mustSet(t, s, store.Key{Namespace: "ns", ID: string(rune('a' + i))}, "v")
	}
	for i, ch := range chans {
		waitWake(t, ch, "Set of the watched key "+string(rune('a'+i%5)))
		stops[i]()
	}
	ch, stop, err := s.Watch(ctx, store.Key{Namespace: "ns", ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	mustSet(t, s, store.Key{Namespace: "ns", ID: "a"}, "again")
	waitWake(t, ch, "Set after every earlier waiter stopped")
}

// TestWatchContext checks that a done ctx ends the watch, and that Watch on a closed
// store fails.
func TestWatchContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := newStore(t, nil)
	_, stop, err := s.Watch(ctx, store.Key{Namespace: "ns", ID: "k"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	stop()
	if _, _, err := store.Adapt(s).(store.Notifier).Watch(ctx, store.Key{Namespace: "ns", ID: "k"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch with a cancelled ctx = %v", err)
	}
	s.Close()
	if _, _, err := s.Watch(context.Background(), store.Key{Namespace: "ns", ID: "k"}); err == nil {
		t.Error("Watch on a closed store succeeded")
	}
}

// TestCorruptVersion checks that a damaged counter never reads as 0 (which would make
// entries recorded before any bump valid again) nor as its old value: it is an error
// matching ErrCorrupt until a Bump rewrites it.
func TestCorruptVersion(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	st := store.Adapt(s)
	v := st.(store.Versioner)
	v1, err := v.Bump(ctx, "tag:x")
	if err != nil {
		t.Fatal(err)
	}
	file := filestore.EntryPath(s, store.Key{Namespace: store.InternalPrefix, ID: "tag:x"})
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := v.Versions(ctx, []string{"tag:x", "tag:never"}); !errors.Is(err, filestore.ErrCorrupt) {
		t.Fatalf("Versions after damage = %v, %v (was %d); want an error matching ErrCorrupt", got, err, v1)
	}
	v2, err := v.Bump(ctx, "tag:x")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := v.Versions(ctx, []string{"tag:x"}); err != nil || again[0] != v2 {
		t.Fatalf("Versions once repaired = %v, %v; want %d", again, err, v2)
	}
	if ns, err := st.Namespaces(ctx); err != nil || len(ns) != 0 {
		t.Fatalf("counters showed up as namespaces: %q, %v", ns, err)
	}
}
