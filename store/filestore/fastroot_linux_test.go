package filestore

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFastRootClosed checks that a call on a closed fastRoot uses no descriptor: an
// operation that loaded the root just before Close (or before recoverRoot swapped
// it) must fail, not open its path beneath whatever directory the descriptor's
// number belongs to by then.
func TestFastRootClosed(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fr := newFastRoot(r)
	if fr == nil {
		t.Skip("openat2 is unusable here")
	}
	fr.close()
	// Reopen the directory, so that the closed descriptor's number is likely in use
	// again, by a directory holding the file asked for.
	again, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if data, err, ok := fr.read("f", 10); !ok || err == nil {
		t.Errorf("read on a closed root = %q, %v, %v; want an error", data, err, ok)
	}
	if err, ok := fr.writeFile("", "g", []byte("y"), false, nil); !ok || err == nil {
		t.Errorf("writeFile on a closed root = %v, %v; want an error", err, ok)
	}
	if _, err := os.Lstat(filepath.Join(dir, "g")); err == nil {
		t.Error("writeFile on a closed root wrote the file")
	}
	if _, err, ok := fr.openLock("", "lock"); !ok || err == nil {
		t.Errorf("openLock on a closed root = %v, %v; want an error", err, ok)
	}
}
