package filestore

import "github.com/cachier-go/cachier/store"

// SetForcePolling makes Watch poll instead of using fsnotify, to test the fallback.
func SetForcePolling(s *Store, on bool) { s.forcePoll = on }

// EntryPath returns the file that holds k's entry, for tests that damage files.
func EntryPath(s *Store, k store.Key) string {
	dir, name := s.paths(k)
	return s.abs(dir + "/" + name)
}

// LeasePath returns the file that holds k's lease.
func LeasePath(s *Store, k store.Key) string { return EntryPath(s, k) + leaseSuffix }

// Syncs returns how many fsync calls s has made.
func Syncs(s *Store) int64 { return s.syncs.Load() }
