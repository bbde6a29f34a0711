package testserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// initData fills the data directory data with init (initdb, mariadb-install-db) once
// per machine: the result is kept as a template under the testbin directory, keyed by
// the server binary (path, size, time) and the init command, and later servers get a
// copy, owned by cred's user. Initializing a database takes seconds; copying it takes
// a fraction of one. When the template cannot be kept, init simply runs every time.
func initData(data, binary string, cred *credential, init func() error, initArgs ...string) error {
	fi, err := os.Stat(binary)
	if err != nil {
		return err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s", binary, fi.Size(), fi.ModTime().UnixNano(), strings.Join(initArgs, "\x00"))
	key := hex.EncodeToString(h.Sum(nil))[:16]
	tmpl := filepath.Join(testBinDir(), "templates", filepath.Base(binary)+"-"+key)

	if _, err := os.Stat(tmpl); err == nil {
		if err := copyTree(tmpl, data, cred); err == nil {
			return nil
		}
		_ = os.RemoveAll(data) // a broken template: initialize afresh
	}
	if err := init(); err != nil {
		return err
	}
	// Keep a template: copy, then rename into place, so a template is always whole.
	if err := os.MkdirAll(filepath.Dir(tmpl), 0o755); err != nil {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(tmpl), ".tmp-")
	if err != nil {
		return nil
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(data, filepath.Join(tmp, "data"), nil); err != nil {
		return nil
	}
	_ = os.Rename(filepath.Join(tmp, "data"), tmpl) // fails if another binary won: fine
	return nil
}

// copyTree copies the directory src to dst (regular files, directories and symlinks,
// with their permissions), owned by cred's user when cred is set.
func copyTree(src, dst string, cred *credential) error {
	chown := func(p string) error {
		if cred == nil {
			return nil
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode().Perm()); err != nil { // umask
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets, pipes: not data
		}
		return chown(target)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm)
}
