//go:build !linux

package filestore

import (
	"os"
	"sync/atomic"
)

// fastRoot is Linux's openat2 read and write paths (fastread_linux.go,
// fastwrite_linux.go); elsewhere reads and writes walk.
type fastRoot struct{}

func newFastRoot(*os.Root) *fastRoot { return nil }

func (*fastRoot) close() {}

func (*fastRoot) read(string, int64) ([]byte, error, bool) { return nil, nil, false }

func (*fastRoot) writeFile(string, string, []byte, bool, *atomic.Int64) (error, bool) {
	return nil, false
}

func (*fastRoot) remove(string, string) (error, bool) { return nil, false }

func (*fastRoot) openLock(string, string) (uintptr, error, bool) { return 0, nil, false }

// closeFD is never called here: openLock opens nothing.
func closeFD(uintptr) {}
