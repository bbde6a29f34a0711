//go:build unix

package main

import (
	"os"
	"syscall"
)

// forwardedSignals are the signals cachier handles while it runs or waits: SIGTERM
// and SIGHUP are passed on to CMD; SIGINT from a terminal reaches CMD directly.
var forwardedSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// detachedAttr starts a background cachier in its own session, so that the
// terminal's signals and hang-up do not reach it.
func detachedAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
