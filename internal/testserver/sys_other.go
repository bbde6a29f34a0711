//go:build unix && !linux

package testserver

import "syscall"

// sysProcAttr puts a server in its own process group, so a terminal's Ctrl-C reaches
// only the test binary, and stopping kills the whole group. Without a parent-death
// signal on this system, a test binary that crashes leaves its servers running.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// killGroup SIGKILLs the process group led by pid.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// credential is the user and group a server runs as.
type credential = syscall.Credential

// kill sends sig to pid (0 only checks that it exists).
func kill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
