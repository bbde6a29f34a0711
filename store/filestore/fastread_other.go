//go:build !linux

package filestore

import "os"

// fastRoot is Linux's openat2 read path (fastread_linux.go); elsewhere reads walk.
type fastRoot struct{}

func newFastRoot(*os.Root) *fastRoot { return nil }

func (*fastRoot) close() {}

func (*fastRoot) read(string, int64) ([]byte, error, bool) { return nil, nil, false }
