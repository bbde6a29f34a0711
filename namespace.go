package cachier

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
)

// qualifyMain turns the runtime name of a function of package main ("main.transform"),
// which every program shares, into one that names the program: its main package path
// from the build information ("example.com/tool/cmd/a.transform"; the main module's
// path when the package path is missing), or the executable's name where the binary
// has no module ("go run file.go": "file.transform"). Two programs that each wrap a
// main.transform then keep separate entries in a shared store. Other names are
// returned as they are.
func qualifyMain(name string) string {
	rest, ok := strings.CutPrefix(name, "main.")
	if !ok {
		return name
	}
	bi, _ := debug.ReadBuildInfo()
	exe, _ := os.Executable()
	return mainPath(bi, exe) + "." + rest
}

// mainPath is what names package main in namespaces: see qualifyMain.
func mainPath(bi *debug.BuildInfo, exe string) string {
	if bi != nil {
		for _, p := range []string{bi.Path, bi.Main.Path} {
			if p != "" && p != "command-line-arguments" {
				return p
			}
		}
	}
	name := strings.TrimSuffix(filepath.Base(exe), ".exe")
	if name == "" || name == "." || name == string(filepath.Separator) {
		return "main"
	}
	return name
}

// namespaceTypes remembers, per namespace, the argument and result types of the
// functions wrapped under it in this process.
var namespaceTypes sync.Map // namespace -> [2]reflect.Type

// claimNamespace records that ns holds results of a function from a to r, or reports
// an error if a function of other types was wrapped under ns in this process: their
// entries would decode as each other's, or not at all.
func claimNamespace(ns string, a, r reflect.Type) error {
	v, loaded := namespaceTypes.LoadOrStore(ns, [2]reflect.Type{a, r})
	if !loaded {
		return nil
	}
	if got := v.([2]reflect.Type); got != [2]reflect.Type{a, r} {
		return fmt.Errorf("%w: namespace %q already holds the results of a func(ctx, %v) (%v, error) in this process, and this function is a func(ctx, %v) (%v, error); give one of them its own Name or Version (functions share a namespace only with the same argument and result types)",
			ErrOption, ns, got[0], got[1], a, r)
	}
	return nil
}
