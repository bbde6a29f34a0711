//go:build !linux

package filestore

// SetWalkOnly is a no-op where paths are always resolved one component at a time.
func SetWalkOnly(bool) bool { return true }
