package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cachier-go/cachier/store"
)

// Version counters (store.Versioner) live apart from every namespace, because a tag is
// shared by all functions:
//
//	<root>/.versions/<xx>/<hash>
//
// with <hash> and <xx> derived from the counter's name exactly as an entry's file name
// is from its ID, so names are escaped by hashing and kept inside the file. The
// directory starts with a dot, which no namespace directory can. A counter file is a
// record like an entry (magic "CGFV") whose payload is the 8-byte value, replaced by
// rename, so a reader sees the old value or the new one.
//
// Bump writes a fresh random non-zero value rather than incrementing, as the contract
// allows: no lock is needed, and concurrent bumps that overwrite each other still each
// leave a value no entry has recorded.
const versionsDir = ".versions"

var magicVersion = [4]byte{'C', 'G', 'F', 'V'}

var _ store.Versioner = (*Store)(nil)

// versionPaths returns the fan-out directory of a counter, relative to the root, and
// the counter's file name in it.
func (s *Store) versionPaths(name string) (dir, file string) {
	h := entryName(name)
	return versionsDir + "/" + h[:2], h
}

// Versions returns the value of each named counter, in order; a missing counter is 0.
// A damaged counter file is logged and bumped, never read as 0, which could make an
// entry invalidated long ago valid again.
func (s *Store) Versions(ctx context.Context, names []string) ([]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]uint64, len(names))
	for i, name := range names {
		if err := store.ValidateCounter(name); err != nil {
			return nil, err
		}
		v, err := s.readVersion(name)
		if errors.Is(err, errFormat) {
			s.log.Warn("filestore: corrupt version counter; bumping it", "name", name, "err", err)
			v, err = s.Bump(ctx, name)
		}
		if err != nil {
			return nil, fmt.Errorf("filestore: versions: %q: %w", name, err)
		}
		out[i] = v
	}
	return out, nil
}

// readVersion reads one counter; errors matching errFormat mean a damaged file.
func (s *Store) readVersion(name string) (uint64, error) {
	dir, file := s.versionPaths(name)
	data, err := s.readRecord(dir + "/" + file)
	path := s.abs(dir + "/" + file)
	switch {
	case err == nil:
	case isNotExist(err):
		return 0, nil
	case isSymlinkErr(err), errors.Is(err, errNotRegular):
		return 0, fmt.Errorf("%w: %w", errFormat, err)
	default:
		return 0, err
	}
	_, id, payload, err := decodeRecord(data, magicVersion)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if id != name || len(payload) != 8 {
		return 0, fmt.Errorf("%w: %s holds counter %q with %d bytes", errFormat, path, id, len(payload))
	}
	return binary.BigEndian.Uint64(payload), nil
}

// Bump moves the named counter to a fresh random non-zero value and returns it.
func (s *Store) Bump(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := store.ValidateCounter(name); err != nil {
		return 0, err
	}
	v := store.NewVersion()
	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], v)
	dir, file := s.versionPaths(name)
	data := encodeRecord(magicVersion, time.Now(), name, payload[:])
	err := s.writeFile(dir, file, data)
	if err != nil && isNotExist(err) {
		if err = s.mkdir(versionsDir); err == nil {
			if err = s.mkdir(dir); err == nil {
				err = s.writeFile(dir, file, data)
			}
		}
	}
	if err != nil {
		return 0, fmt.Errorf("filestore: bump %q: %w", name, err)
	}
	return v, nil
}
