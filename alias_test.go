package cachier_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

// TestStoreAlias checks binding in code, binding by environment, and the errors for
// an unbound alias, a bad one and a second binding.
func TestStoreAlias(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(nil)
	if err := cachier.BindStore("test_reports", st); err != nil {
		t.Fatal(err)
	}
	if err := cachier.BindStore("TEST_REPORTS", memstore.New(nil)); !errors.Is(err, cachier.ErrOption) || !strings.Contains(err.Error(), "already bound") {
		t.Fatalf("second BindStore: %v", err)
	}
	f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x + 1, nil },
		cachier.Name("alias"), cachier.StoreAlias("test_reports"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Call(ctx, 1); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range st.Entries(ctx, "alias") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d entries in the aliased store, want 1", n)
	}

	_, err = cachier.Wrap(func(_ context.Context, x int) (int, error) { return x, nil }, cachier.StoreAlias("test_unbound"))
	if err == nil || !strings.Contains(err.Error(), "BindStore") || !strings.Contains(err.Error(), "CACHIER_STORE_TEST_UNBOUND") {
		t.Fatalf("unbound alias: %v", err)
	}
	if _, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x, nil }, cachier.StoreAlias("bad-alias")); err == nil {
		t.Fatal("a bad alias was accepted")
	}

	t.Setenv("CACHIER_STORE_TEST_ENV", "mem://")
	g, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x * 3, nil },
		cachier.Name("alias-env"), cachier.StoreAlias("test_env"))
	if err != nil {
		t.Fatalf("alias bound by environment: %v", err)
	}
	if v, err := g.Call(ctx, 2); v != 6 || err != nil {
		t.Fatalf("Call = %v, %v", v, err)
	}
	if d, ok := g.CacheDir(); ok {
		t.Fatalf("the environment's mem:// store was not used (CacheDir %s)", d)
	}
}

func ExampleStoreAlias() {
	// At start-up, once: bind the alias to a store (or set $CACHIER_STORE_EXAMPLE_REPORTS).
	if err := cachier.BindStore("example_reports", memstore.New(nil)); err != nil {
		panic(err)
	}
	// Anywhere: name the store by its alias.
	report, err := cachier.Wrap(func(_ context.Context, month string) (string, error) {
		return "report for " + month, nil
	}, cachier.Name("report"), cachier.StoreAlias("example_reports"))
	if err != nil {
		panic(err)
	}
	v, _ := report.Call(context.Background(), "2026-11")
	fmt.Println(v)
	// Output: report for 2026-11
}
