package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// globList is the repeatable --key-file flag.
type globList []string

func (g *globList) String() string { return strings.Join(*g, ",") }

func (g *globList) Set(pattern string) error {
	if err := validateGlob(pattern); err != nil {
		return err
	}
	*g = append(*g, pattern)
	return nil
}

// validateGlob checks a --key-file pattern: path.Match syntax in each
// slash-separated segment, plus "**" as a whole segment for any number of
// directories.
func validateGlob(pattern string) error {
	if pattern == "" {
		return errors.New("empty pattern; give a file or a glob such as 'src/**/*.go'")
	}
	if strings.ContainsRune(pattern, 0) {
		return fmt.Errorf("pattern %s holds a NUL byte", quote(pattern))
	}
	for _, seg := range strings.Split(filepath.ToSlash(pattern), "/") {
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("pattern %s: bad segment %s: %w (use *, ?, [a-z] and ** as a whole segment)", quote(pattern), quote(seg), err)
		}
	}
	return nil
}

// hasMeta reports whether a glob segment has a special character.
func hasMeta(seg string) bool { return strings.ContainsAny(seg, `*?[\`) }

// matchGlob reports whether name (slash-separated, relative to the glob's base)
// matches the pattern segments pat, where "**" matches zero or more segments.
func matchGlob(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(name); i++ {
				if matchGlob(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// mayContain reports whether a directory at dir (segments relative to the base)
// can hold a match of pat: a walk skips the directories that cannot.
func mayContain(pat, dir []string) bool {
	for i, d := range dir {
		if i >= len(pat) {
			return false
		}
		if pat[i] == "**" {
			return true
		}
		if ok, err := path.Match(pat[i], d); err != nil || !ok {
			return false
		}
	}
	return true
}

// globFiles returns the regular files matching pattern, as slash-separated paths
// (relative to the working directory when pattern is relative), sorted. Symlinks to
// files count as files; symlinked directories are not entered.
func globFiles(pattern string) ([]string, error) {
	p := filepath.ToSlash(pattern)
	abs := strings.HasPrefix(p, "/") || filepath.IsAbs(pattern)
	segs := strings.Split(p, "/")
	// The base is the leading run of segments without special characters.
	n := 0
	for n < len(segs)-1 && !hasMeta(segs[n]) && segs[n] != "**" {
		n++
	}
	base := strings.Join(segs[:n], "/")
	switch {
	case base == "" && abs:
		base = "/"
	case base == "":
		base = "."
	}
	pat := segs[n:]
	var out []string
	if len(pat) == 1 && !hasMeta(pat[0]) && pat[0] != "**" {
		// A plain file name.
		name := path.Join(base, pat[0])
		if fi, err := os.Stat(filepath.FromSlash(name)); err == nil && fi.Mode().IsRegular() {
			out = append(out, name)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return out, nil
	}
	err := filepath.WalkDir(filepath.FromSlash(base), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == filepath.FromSlash(base) && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		rel, rerr := filepath.Rel(filepath.FromSlash(base), p)
		if rerr != nil {
			return rerr
		}
		var parts []string
		if rel != "." {
			parts = strings.Split(filepath.ToSlash(rel), "/")
		}
		if d.IsDir() {
			if rel != "." && !mayContain(pat, parts) {
				return filepath.SkipDir
			}
			return nil
		}
		if !matchGlob(pat, parts) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		out = append(out, filepath.ToSlash(p))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// digestEntry is what the digest cache knows of one file.
type digestEntry struct {
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime"` // Unix nanoseconds
	Sum   string `json:"sum"`   // SHA-256, hex
}

// racyWindow is how recent a file's modification may be for its digest to be
// cached: a file written within it may change again within the same mtime tick
// without its size changing, so it is hashed every time until it is older.
const racyWindow = 2 * time.Second

// maxDigestCache bounds the digest cache; past it, the cache starts over.
const maxDigestCache = 200_000

// digestCachePath is the file of the digest cache, in the user's cache directory.
func digestCachePath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "cachier", "file-digests.json"), nil
}

// fileDigests returns one digest of the --key-file patterns and of the path and
// contents of every file they match. File contents are hashed once and the digest
// is remembered by absolute path, size and modification time (in the user's cache
// directory), so that an unchanged tree costs one stat per file. A pattern that
// matches no file is an error: a mistyped pattern would otherwise key on nothing.
func fileDigests(m *Main, patterns []string) (string, error) {
	cachePath, cerr := digestCachePath()
	cache := map[string]digestEntry{}
	if cerr == nil {
		if b, err := os.ReadFile(cachePath); err == nil {
			if json.Unmarshal(b, &cache) != nil {
				cache = map[string]digestEntry{}
			}
		}
	}
	now := m.now()
	changed := false
	h := sha256.New()
	for _, pattern := range patterns {
		files, err := globFiles(pattern)
		if err != nil {
			return "", fmt.Errorf("--key-file %s: %w", quote(pattern), err)
		}
		if len(files) == 0 {
			return "", fmt.Errorf("--key-file %s matches no file (patterns are relative to the working directory; ** matches any directories)", quote(pattern))
		}
		fmt.Fprintf(h, "pattern\x00%s\x00", pattern)
		for _, name := range files {
			sum, updated, err := fileDigest(cache, name, now)
			if err != nil {
				return "", fmt.Errorf("--key-file %s: %w", quote(pattern), err)
			}
			changed = changed || updated
			fmt.Fprintf(h, "%s\x00%s\x00", name, sum)
		}
	}
	if changed && cerr == nil {
		if len(cache) > maxDigestCache {
			cache = map[string]digestEntry{}
		}
		saveDigestCache(cachePath, cache) // best effort: a lost cache only costs hashing
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fileDigest returns the SHA-256 of the file name, from cache when its size and
// modification time are unchanged, and whether it updated cache.
func fileDigest(cache map[string]digestEntry, name string, now time.Time) (string, bool, error) {
	p := filepath.FromSlash(name)
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", false, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", false, err
	}
	if e, ok := cache[abs]; ok && e.Size == fi.Size() && e.Mtime == fi.ModTime().UnixNano() {
		return e.Sum, false, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", false, fmt.Errorf("read %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if now.Sub(fi.ModTime()) < racyWindow {
		return sum, false, nil
	}
	cache[abs] = digestEntry{Size: fi.Size(), Mtime: fi.ModTime().UnixNano(), Sum: sum}
	return sum, true, nil
}

// saveDigestCache writes the cache by renaming a temporary file over it, so that a
// concurrent reader sees the old or the new cache whole.
func saveDigestCache(p string, cache map[string]digestEntry) {
	b, err := json.Marshal(cache)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".file-digests-*")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), p) != nil {
		_ = os.Remove(f.Name())
	}
}
