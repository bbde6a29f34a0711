//go:build windows

package testserver

import (
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// credential is the user and group a server runs as; Windows runs servers as the
// test's own user.
type credential struct{ Uid, Gid uint32 }

// sysProcAttr starts a server in its own process group, so that Ctrl-C in the
// console reaches only the test binary, which stops its servers itself.
func sysProcAttr(*credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// killGroup kills pid (Windows has no process groups to signal).
func killGroup(pid int) { _ = kill(pid, syscall.SIGKILL) }

// kill ends pid for any signal but 0, which only checks that it exists (ESRCH if
// not): Windows has no signals to send.
func kill(pid int, sig syscall.Signal) error {
	if sig == 0 {
		h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
		if err != nil {
			return syscall.ESRCH
		}
		defer windows.CloseHandle(h)
		var code uint32
		if windows.GetExitCodeProcess(h, &code) == nil && code != 259 { // STILL_ACTIVE
			return syscall.ESRCH
		}
		return nil
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return syscall.ESRCH
	}
	return p.Kill()
}
