package filestore

import "golang.org/x/sys/unix"

// oNoatime keeps reads from writing: with the default relatime mount option, the first
// read of a file after it is written updates its access time, which dirties the inode
// and costs a journal write on every first hit. Nothing here uses access times.
// The kernel allows it only on files the process owns; readRecordFile retries without
// it on EPERM (a shared directory holding another user's files).
const oNoatime = unix.O_NOATIME
