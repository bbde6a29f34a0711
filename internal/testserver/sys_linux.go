//go:build linux

package testserver

import "syscall"

// sysProcAttr puts a server in its own process group (so a terminal's Ctrl-C reaches
// only the test binary, and stopping kills the whole group) and has the kernel
// SIGKILL it when the test binary dies. Go sets the credentials before the
// parent-death signal, so the signal survives running as another user.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// killGroup SIGKILLs the process group led by pid.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// credential is the user and group a server runs as.
type credential = syscall.Credential

// kill sends sig to pid (0 only checks that it exists).
func kill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
