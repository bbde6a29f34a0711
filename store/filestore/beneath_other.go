//go:build !linux

package filestore

// oDirWalk opens a directory as a base for *at calls where there is no O_PATH.
const oDirWalk = 0 // O_RDONLY

// Without openat2, openBeneath always walks paths component by component.
func probeOpenat2(int)                                     {}
func haveOpenat2() bool                                    { return false }
func disableOpenat2()                                      {}
func openat2Beneath(int, string, int, uint32) (int, error) { panic("unreachable") }
