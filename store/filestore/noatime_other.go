//go:build !linux

package filestore

// oNoatime is zero where the system has no O_NOATIME.
const oNoatime = 0
