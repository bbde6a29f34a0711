package filestore

import "github.com/cachier-go/cachier/store"

// SetForcePolling turns notifications off, as on a platform without them: Watch then
// reports errors.ErrUnsupported.
func SetForcePolling(s *Store, on bool) { s.forcePoll = on }

// EntryPath returns the file that holds k's entry, for tests that damage files.
func EntryPath(s *Store, k store.Key) string {
	dir, name := s.paths(k)
	return s.abs(dir + "/" + name)
}

// LeasePath returns the file that holds k's lease, a record of package store.
func LeasePath(s *Store, k store.Key) string {
	return EntryPath(s, store.Key{Namespace: store.InternalPrefix + k.Namespace, ID: k.ID})
}

// Syncs returns how many fsync calls s has made.
func Syncs(s *Store) int64 { return s.syncs.Load() }
