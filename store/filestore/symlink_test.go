//go:build unix

package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
)

// snapshotTree describes every file and directory under dir: path, type and mode,
// modification time, and the contents of regular files. Any write, creation, rename or
// removal under dir changes it.
func snapshotTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var data []byte
		if d.Type().IsRegular() {
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		fmt.Fprintf(&b, "%s %v %d %x\n", p, fi.Mode(), fi.ModTime().UnixNano(), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPlantedSymlinks plants a symlink in place of each directory and file the store
// uses for one key (namespace directory, its .namespace file, fan-out directory, entry,
// lease, lock file, and the .versions directory, its fan-out and a counter file), each
// pointing at the genuine article moved outside the root, by an absolute and by a
// relative link. Every operation of the store then runs, and none may return what is
// outside (a hit, a listed entry or lease, a held lease, a counter value, a namespace)
// or change anything there. It runs with openat2 and with the component-by-component
// walk used where openat2 is missing.
func TestPlantedSymlinks(t *testing.T) {
	for _, walk := range []bool{false, true} {
		t.Run(fmt.Sprintf("walk=%v", walk), func(t *testing.T) {
			prev := filestore.SetWalkOnly(walk)
			defer filestore.SetWalkOnly(prev)
			for _, level := range []string{"namespace directory", "namespace file", "fan-out directory",
				"entry file", "lease file", "lock file", "versions directory", "versions fan-out", "counter file"} {
				for _, relative := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/relative=%v", level, relative), func(t *testing.T) {
						testPlantedSymlink(t, level, relative)
					})
				}
			}
		})
	}
}

func testPlantedSymlink(t *testing.T, level string, relative bool) {
	ctx := context.Background()
	top := t.TempDir()
	root, outside := filepath.Join(top, "root"), filepath.Join(top, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// An upper-case namespace has a hashed directory name and a .namespace file.
	k := store.Key{Namespace: "pkg.Fn", ID: "k"}
	holder := store.Owner{Host: "elsewhere", PID: 1, Token: "holder"}
	me := store.Owner{Host: "here", PID: 2, Token: "me"}
	const tag = "tag:t"

	s, err := filestore.New(&filestore.Options{Dir: root, PollInterval: time.Millisecond})
	st := store.Adapt(s)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustSet(t, s, k, "genuine")
	if _, err := st.Acquire(ctx, k, holder, time.Hour); err != nil {
		t.Fatal(err)
	}
	counter, err := st.(store.Versioner).Bump(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	entry := filestore.EntryPath(s, k)
	// Counters are package store's records, in namespace "\x01".
	counters := []string{filestore.EntryPath(s, store.Key{Namespace: store.InternalPrefix, ID: tag})}
	victim := map[string]string{
		"namespace directory": s.Dir(k.Namespace),
		"namespace file":      filepath.Join(s.Dir(k.Namespace), ".namespace"),
		"fan-out directory":   filepath.Dir(entry),
		"entry file":          entry,
		"lease file":          filestore.LeasePath(s, k),
		"lock file":           filepath.Join(filepath.Dir(filestore.LeasePath(s, k)), ".lock"),
		"versions directory":  s.Dir(store.InternalPrefix),
		"versions fan-out":    filepath.Dir(counters[0]),
		"counter file":        counters[0],
	}[level]
	if _, err := os.Lstat(victim); err != nil {
		t.Fatalf("nothing to replace at %s: %v", victim, err)
	}
	moved := filepath.Join(outside, "moved")
	if err := os.Rename(victim, moved); err != nil {
		t.Fatal(err)
	}
	target := moved
	if relative {
		if target, err = filepath.Rel(filepath.Dir(victim), moved); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(target, victim); err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, outside)
	if level == "lock file" {
		// Taking a lock changes no file, so hold the lock outside: a store that
		// followed the link would wait for it.
		f, err := os.Open(moved)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		// A store that follows the link retries the lock until its context ends, so
		// Acquire's return while the lock is held is the check; the minute is a guard
		// against that wait, not a bound on a store that does not wait (it returns at
		// once, however slow the machine).
		actx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := st.Acquire(actx, k, me, time.Hour); done <- err }()
		select {
		case <-done: // whatever it returned, it did not wait for that lock
		case <-time.After(time.Minute):
			t.Errorf("Acquire still waited for the lock outside the root after a minute")
			cancel()
			<-done // before the lock outside is let go
		}
		cancel()
		f.Close()
	}

	// Reads: nothing that lives outside may come back.
	entryGone := level == "namespace directory" || level == "fan-out directory" || level == "entry file"
	leaseGone := level == "lease file" // leases are records in a namespace of their own
	if e, err := s.Get(ctx, k); entryGone && err == nil {
		t.Errorf("Get read %q through the symlinked %s", e.Value, level)
	}
	for info, err := range s.Entries(ctx, k.Namespace) {
		if err == nil && entryGone && info.Key == k {
			t.Errorf("Entries listed %v through the symlinked %s", info.Key, level)
		}
	}
	for l, err := range st.Leases(ctx, k.Namespace) {
		if err == nil && leaseGone && l.Owner == holder {
			t.Errorf("Leases listed the lease outside through the symlinked %s", level)
		}
	}
	if nss, err := s.Namespaces(ctx); err == nil && slices.Contains(nss, k.Namespace) &&
		(level == "namespace directory" || level == "namespace file") {
		t.Errorf("Namespaces = %q, read through the symlinked %s", nss, level)
	}
	if strings.HasPrefix(level, "versions") || level == "counter file" {
		if vs, err := st.(store.Versioner).Versions(ctx, []string{tag}); err == nil && vs[0] == counter {
			t.Errorf("Versions read the counter outside through the symlinked %s", level)
		}
	}
	if _, err := st.Acquire(ctx, k, me, time.Hour); leaseGone {
		var held *store.HeldError
		if errors.As(err, &held) {
			t.Errorf("Acquire saw the lease outside through the symlinked %s: %v", level, err)
		}
	}
	for _, poll := range []bool{false, true} {
		filestore.SetForcePolling(s, poll)
		if _, stop, err := s.Watch(ctx, k); err == nil {
			time.Sleep(5 * time.Millisecond)
			stop()
		}
	}

	// Writes and removals: whatever they return, nothing outside may change.
	_ = s.Set(ctx, k, store.Entry{Value: []byte("new"), StoredAt: time.Now()})
	l, _ := st.Acquire(ctx, k, me, time.Hour)
	_, _ = st.Renew(ctx, l, time.Hour)
	_ = st.Release(ctx, l)
	_ = st.Release(ctx, store.Lease{Key: k, Owner: holder})
	_, _ = st.(store.Versioner).Bump(ctx, tag)
	_, _ = st.(store.Versioner).Versions(ctx, []string{tag})
	_ = s.Delete(ctx, k)
	_ = s.Set(ctx, k, store.Entry{Value: []byte("again"), StoredAt: time.Now()})
	_, _ = s.DeleteBefore(ctx, k.Namespace, time.Now().Add(time.Hour))
	_, _ = st.ReleaseAll(ctx, k.Namespace)
	_ = s.Clear(ctx, k.Namespace)

	if after := snapshotTree(t, outside); after != before {
		t.Errorf("the store changed files outside its root through the symlinked %s:\nbefore:\n%s\nafter:\n%s", level, before, after)
	}
	// The link itself may have been replaced by a real file or removed, but must
	// never have been followed: if it is still a link, it still points outside.
	if fi, err := os.Lstat(victim); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if got, _ := os.Readlink(victim); got != target {
			t.Errorf("the symlink now points to %q", got)
		}
	}
}

// TestSymlinkInsideRoot plants a relative symlink that stays inside the root: one
// key's entry file pointing at another key's. It is refused all the same.
func TestSymlinkInsideRoot(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	a, b := store.Key{Namespace: "ns", ID: "a"}, store.Key{Namespace: "other", ID: "b"}
	mustSet(t, s, a, "a's value")
	mustSet(t, s, b, "b's value")
	pa, pb := filestore.EntryPath(s, a), filestore.EntryPath(s, b)
	rel, err := filepath.Rel(filepath.Dir(pb), pa)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pb); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, pb); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Get(ctx, b); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get through a symlink inside the root = %q, %v; want a miss", e.Value, err)
	}
	// The same with the whole namespace directory.
	if err := os.RemoveAll(s.Dir("other")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ns", s.Dir("other")); err != nil {
		t.Fatal(err)
	}
	c := store.Key{Namespace: "other", ID: "a"}
	if e, err := s.Get(ctx, c); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get through a symlinked namespace directory inside the root = %q, %v; want a miss", e.Value, err)
	}
	if err := s.Set(ctx, c, store.Entry{Value: []byte("x")}); err == nil {
		t.Error("Set through a symlinked namespace directory inside the root succeeded")
	}
	if e, err := s.Get(ctx, a); err != nil || string(e.Value) != "a's value" {
		t.Errorf("Get(a) = %q, %v after writes through the link", e.Value, err)
	}
}

// TestClosedStore checks that every operation after Close fails instead of using the
// closed root descriptor, whose number the process may have reused.
func TestClosedStore(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	k := store.Key{Namespace: "ns", ID: "k"}
	mustSet(t, s, k, "v")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Open something, so that the old descriptor number is likely in use again.
	f, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := s.Get(ctx, k); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Close = %v; want an error that is not a miss", err)
	}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("v")}); err == nil {
		t.Error("Set after Close succeeded")
	}
	if _, err := s.Namespaces(ctx); err == nil {
		t.Error("Namespaces after Close succeeded")
	}
}

// TestLockFileNotRegular puts a FIFO, and then a directory, where a fan-out
// directory's lock file should be. Swap (and so Acquire) must refuse it rather than
// lock it, with openat2 and with the walk: a lock file is a regular file the store
// created, and anything else there was planted.
func TestLockFileNotRegular(t *testing.T) {
	for _, walk := range []bool{false, true} {
		for _, kind := range []string{"fifo", "directory"} {
			t.Run(fmt.Sprintf("walk=%v/%s", walk, kind), func(t *testing.T) {
				prev := filestore.SetWalkOnly(walk)
				defer filestore.SetWalkOnly(prev)
				ctx := context.Background()
				s := newStore(t, nil)
				k := store.Key{Namespace: "ns", ID: "k"}
				mustSet(t, s, k, "v") // creates the fan-out directory
				lock := filepath.Join(filepath.Dir(filestore.EntryPath(s, k)), ".lock")
				var err error
				if kind == "fifo" {
					err = unix.Mkfifo(lock, 0o600)
				} else {
					err = os.Mkdir(lock, 0o700)
				}
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := s.Swap(ctx, k, []byte("v"), &store.Entry{Value: []byte("w")}); err == nil {
					t.Errorf("Swap with a %s for its lock file = %v, nil; want an error", kind, ok)
				}
				if e, err := s.Get(ctx, k); err != nil || string(e.Value) != "v" {
					t.Errorf("Get after the refused Swap = %q, %v; want \"v\"", e.Value, err)
				}
			})
		}
	}
}
