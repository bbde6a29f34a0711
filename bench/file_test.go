package bench

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/filestore"
	"github.com/peterbourgon/diskv"
)

// payload is what every store subject memoizes: 256 bytes, stored by cachier as
// they are (a []byte result is not encoded), so that cachier and the raw operation
// move the same bytes.
var payload = bytes.Repeat([]byte("cachier!"), 32)

func makePayload(context.Context, string) ([]byte, error) { return payload, nil }

// step visits keys in a scattered order, so that a hit at n entries does not read
// the same few files over and over.
const step = 7919

func fileSubjects(t *testing.T) []subject {
	ctx := context.Background()
	root := t.TempDir()
	st, err := filestore.New(&filestore.Options{Dir: filepath.Join(root, "cachier")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f, err := cachier.Wrap(makePayload, cachier.Name("bench/file"), cachier.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Call(ctx, "hot"); err != nil {
		t.Fatal(err)
	}
	hotPath := entryFiles(t, f)[0]

	dv := diskv.New(diskv.Options{
		BasePath:     filepath.Join(root, "diskv"),
		TempDir:      filepath.Join(root, "diskv-tmp"), // atomic writes, as cachier's
		CacheSizeMax: 0,                                // no in-memory cache: a disk read
	})
	if err := dv.Write("hot", payload); err != nil {
		t.Fatal(err)
	}
	rawDir := filepath.Join(root, "raw")
	if err := os.MkdirAll(rawDir, 0o700); err != nil {
		t.Fatal(err)
	}

	subs := []subject{
		{op: "hit", impl: "cachier (filestore)", base: true, run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Call(ctx, "hot"); err != nil {
					must(b, "call", err)
				}
			}
		}},
		{op: "hit", impl: "open+read+close", note: "os.ReadFile of the entry's own file", run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := os.ReadFile(hotPath); err != nil {
					must(b, "read", err)
				}
			}
		}},
		{op: "hit", impl: "github.com/peterbourgon/diskv", note: "in-memory cache off", run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := dv.Read("hot"); err != nil {
					must(b, "read", err)
				}
			}
		}},
		{op: "miss", impl: "cachier (filestore)", base: true, run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Call(ctx, "miss-"+strconv.FormatInt(missKey.Add(1), 10)); err != nil {
					must(b, "call", err)
				}
			}
		}},
		{op: "miss", impl: "read miss + atomic write", note: "ReadFile (ENOENT), write a temporary file, rename", run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p := filepath.Join(rawDir, "miss-"+strconv.FormatInt(missKey.Add(1), 10))
				if _, err := os.ReadFile(p); err == nil {
					must(b, "read", fmt.Errorf("%s exists", p))
				}
				must(b, "write", atomicWrite(p, payload))
			}
		}},
		{op: "miss", impl: "github.com/peterbourgon/diskv", note: "Read miss + Write", run: func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k := "miss-" + strconv.FormatInt(missKey.Add(1), 10)
				if _, err := dv.Read(k); err == nil {
					must(b, "read", fmt.Errorf("%s exists", k))
				}
				must(b, "write", dv.Write(k, payload))
			}
		}},
	}

	sizes := []int{1_000, 10_000, 100_000}
	if *flagMillion {
		sizes = append(sizes, 1_000_000)
	} else {
		addNote("file: the hit at 1M entries is opt-in (bench/run -bench.million): populating a million files takes minutes on 2 cores.")
	}
	for _, n := range sizes {
		g, err := cachier.Wrap(makePayload, cachier.Name(fmt.Sprintf("bench/file/%d", n)), cachier.WithStore(st))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := g.Precache(ctx, strconv.Itoa(i), payload); err != nil {
				t.Fatal(err)
			}
		}
		paths := entryFiles(t, g)
		if len(paths) != n {
			t.Fatalf("%d entry files for %d entries", len(paths), n)
		}
		keys := make([]string, n)
		for i := range keys {
			keys[i] = strconv.Itoa(i)
		}
		op := fmt.Sprintf("hit, %s entries", short(n))
		subs = append(subs,
			subject{op: op, impl: "cachier (filestore)", base: true, run: func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := g.Call(ctx, keys[i%n]); err != nil {
						must(b, "call", err)
					}
					i += step
				}
				if m := g.Stats().Misses; m != 0 {
					must(b, "stats", fmt.Errorf("%d misses in a hit benchmark", m))
				}
			}},
			subject{op: op, impl: "open+read+close", note: "the same files", run: func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := os.ReadFile(paths[i%n]); err != nil {
						must(b, "read", err)
					}
					i += step
				}
			}},
		)
	}
	return subs
}

func short(n int) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return strconv.Itoa(n)
}

// entryFiles lists the files holding f's entries.
func entryFiles[A, R any](t *testing.T, f *cachier.Func[A, R]) []string {
	t.Helper()
	dir, ok := f.CacheDir()
	if !ok {
		t.Fatal("no cache directory")
	}
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil || len(paths) == 0 {
		t.Fatalf("no entry files under %s: %v", dir, err)
	}
	return paths
}

// atomicWrite writes b to a temporary file beside path and renames it over path, as
// any careful file cache does.
func atomicWrite(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
