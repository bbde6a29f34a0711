package cachier

import (
	"runtime/debug"
	"testing"
)

// Functions of package main are named after their program, so that two programs
// sharing a store do not read each other's results.
func TestMainPath(t *testing.T) {
	for _, tc := range []struct {
		bi   *debug.BuildInfo
		exe  string
		want string
	}{
		{&debug.BuildInfo{Path: "example.com/tool/cmd/a", Main: debug.Module{Path: "example.com/tool"}}, "/bin/a", "example.com/tool/cmd/a"},
		{&debug.BuildInfo{Main: debug.Module{Path: "example.com/tool"}}, "/bin/a", "example.com/tool"},
		{&debug.BuildInfo{Path: "command-line-arguments"}, "/tmp/go-build1/b001/exe/upper", "upper"},
		{nil, "/usr/local/bin/tool.exe", "tool"},
		{nil, "", "main"},
	} {
		if got := mainPath(tc.bi, tc.exe); got != tc.want {
			t.Errorf("mainPath(%+v, %q) = %q, want %q", tc.bi, tc.exe, got, tc.want)
		}
	}
	if got := qualifyMain("main.transform"); got == "main.transform" || got[len(got)-len(".transform"):] != ".transform" {
		t.Fatalf("qualifyMain(main.transform) = %q", got)
	}
	if got := qualifyMain("example.com/x.transform"); got != "example.com/x.transform" {
		t.Fatalf("a non-main name changed: %q", got)
	}
}
