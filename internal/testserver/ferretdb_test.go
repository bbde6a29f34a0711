package testserver

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDropUnfinishedFerretDBs: a database file that never got FerretDB's metadata
// table goes (with its WAL and shared memory), one whose file or WAL names it stays.
func TestDropUnfinishedFerretDBs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("broken.sqlite", "SQLite format 3\x00")
	write("broken.sqlite-wal", "nothing")
	write("broken.sqlite-shm", "nothing")
	write("done.sqlite", "SQLite format 3\x00 CREATE TABLE _ferretdb_collections")
	write("inwal.sqlite", "SQLite format 3\x00")
	write("inwal.sqlite-wal", "CREATE TABLE _ferretdb_collections")
	if err := dropUnfinishedFerretDBs(dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"broken.sqlite": false, "broken.sqlite-wal": false, "broken.sqlite-shm": false,
		"done.sqlite": true, "inwal.sqlite": true, "inwal.sqlite-wal": true,
	} {
		_, err := os.Stat(filepath.Join(dir, name))
		if got := err == nil; got != want {
			t.Errorf("%s there: %v, want %v", name, got, want)
		}
	}
}
