//go:build windows

package main

import (
	"os"
	"syscall"
)

// forwardedSignals are the signals cachier handles while it runs or waits: on
// Windows only Ctrl-C (os.Interrupt), which reaches CMD directly through the console.
var forwardedSignals = []os.Signal{os.Interrupt}

// Process creation flags (winbase.h).
const (
	createNewProcessGroup = 0x00000200
	detachedProcess       = 0x00000008
)

// detachedAttr starts a background cachier without a console and in its own
// process group, so that Ctrl-C in the console does not reach it.
func detachedAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: createNewProcessGroup | detachedProcess, HideWindow: true}
}
