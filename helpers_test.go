package cachier_test

import (
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
	"github.com/cachier-go/cachier/store/memstore"
)

// newClock returns a fake clock that moves only when the test says so. It starts
// later than any real clock, so that a store that checks ExpiresAt by its own (real)
// clock never finds an entry written by this clock expired before the core does.
func newClock() *clock.Fake { return clock.NewFake(time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC)) }

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	var b syncBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

func newFileStore(t testing.TB) store.Store { return store.Adapt(newFileDriver(t)) }

// newFileDriver is a file store driver, for tests that wrap its methods.
func newFileDriver(t testing.TB) *filestore.Store {
	t.Helper()
	st, err := filestore.New(&filestore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// stores runs a test on each store that needs no server.
func stores(t *testing.T, run func(t *testing.T, newStore func(testing.TB) storeCloser)) {
	t.Run("mem", func(t *testing.T) {
		run(t, func(testing.TB) storeCloser { return store.Adapt(memstore.New(nil)) })
	})
	t.Run("file", func(t *testing.T) {
		run(t, func(t testing.TB) storeCloser { return newFileStore(t) })
	})
}

func newFileStoreAt(t testing.TB, dir string) *filestore.Store {
	t.Helper()
	st, err := filestore.New(&filestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustRemoveAll(t testing.TB, dir string) {
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
}

func mustWriteFile(t testing.TB, path, s string) {
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// corruptEveryFile flips a byte in the middle of every regular file under dir.
func corruptEveryFile(t testing.TB, dir string) {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			return err
		}
		b[len(b)/2] ^= 0xFF
		return os.WriteFile(p, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
