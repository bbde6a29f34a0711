package named

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store/filestore"
)

// The helper process's work is chosen by NAMED_HELPER; it shares a filestore with the
// test through NAMED_DIR.
const helperEnv = "NAMED_HELPER"

func openShared(t testing.TB, dir string, clk *clock.Fake) *Manager {
	t.Helper()
	st, err := filestore.New(&filestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return newTestManager(t, st, clk)
}

// TestHelperProcess is not a test: it is the other process of TestCrossProcess.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // only a re-executed child does anything here
	}
	ctx := context.Background()
	m := openShared(t, os.Getenv("NAMED_DIR"), newClock())
	switch mode {
	case "invalidate-orgs":
		// This process knows nothing of users: the bump is enough.
		orgs := must[*Cache[string, int]](t)(Register[string, int](m, "orgs"))
		if err := orgs.Invalidate(ctx); err != nil {
			t.Fatal(err)
		}
	case "write-users":
		users := must[*Cache[string, string]](t)(Register[string, string](m, "users", DependsOn("orgs")))
		users.Set("bob", "from B")
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
	case "read-users":
		users := must[*Cache[string, string]](t)(Register[string, string](m, "users", DependsOn("orgs")))
		fmt.Printf("users=%d\n", users.Len())
	default:
		t.Fatalf("unknown helper mode %q", mode)
	}
}

func runHelper(t *testing.T, dir, mode string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "NAMED_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %s: %v\n%s", mode, err, out)
	}
	return string(out)
}

// TestCrossProcess: process B writes users; this process loads them; process A
// invalidates orgs, the parent of users, without knowing users; this process sees
// users emptied on its first access after CheckInterval, and so does a new process.
func TestCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	clk := newClock()
	m := openShared(t, dir, clk)
	if !m.CrossProcess() {
		t.Skip("LOUD: filestore does not implement store.Versioner yet; cross-process invalidation cannot be tested")
	}
	users := must[*Cache[string, string]](t)(Register[string, string](m, "users", DependsOn("orgs")))
	must[*Cache[string, int]](t)(Register[string, int](m, "orgs"))

	runHelper(t, dir, "write-users")
	if v, _ := users.Get("bob"); v != "from B" {
		t.Fatalf("users[bob] = %q, want B's save", v)
	}
	runHelper(t, dir, "invalidate-orgs")
	if users.Len() != 1 {
		t.Fatal("noticed before CheckInterval passed")
	}
	clk.Advance(time.Minute)
	if n := users.Len(); n != 0 {
		t.Fatalf("users has %d keys after orgs was invalidated in another process", n)
	}
	if out := runHelper(t, dir, "read-users"); !strings.Contains(out, "users=0") {
		t.Fatalf("a new process loaded the invalidated users: %s", out)
	}
}
