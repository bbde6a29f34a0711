package filestore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenFileRefusesSiblingLink checks the walk's last step: os.Root would follow a
// symlink to another file of the same directory, and openFile refuses it, for reading
// and for creating.
func TestOpenFileRefusesSiblingLink(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("a's bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"b", "dangling"} {
		target := map[string]string{"b": "a", "dangling": "missing"}[link]
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Skipf("no symlinks here: %v", err)
		}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if f, err := openFile(r, "a", os.O_RDONLY); err != nil {
		t.Fatalf("openFile(a): %v", err)
	} else {
		f.Close()
	}
	if _, err := readFile(r, "b", 1<<20); !errors.Is(err, errSymlink) {
		t.Errorf("readFile through a link to a sibling = %v, want errSymlink", err)
	}
	if _, err := openFile(r, "dangling", os.O_RDWR|os.O_CREATE); !errors.Is(err, errSymlink) {
		t.Errorf("openFile(O_CREATE) of a dangling link = %v, want errSymlink", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dangling link's target was created: %v", err)
	}
}
