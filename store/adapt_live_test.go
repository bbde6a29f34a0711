package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// liveDirDriver is a driver that keeps live values and names a directory per
// namespace: no driver in this module is both, so the test makes one.
type liveDirDriver struct{ *memstore.Store }

func (liveDirDriver) Dir(ns string) string { return "/cache/" + ns }

// Adapt of a driver that is both a LiveStore and a Locator keeps both: live values
// round-trip through the portable layer, which still validates keys, and Dir is the
// driver's.
func TestAdaptKeepsLiveAndLocator(t *testing.T) {
	ctx := context.Background()
	st := store.Adapt(liveDirDriver{memstore.New(nil)})
	ls, ok := st.(store.LazyLiveStore)
	if !ok {
		t.Fatal("adapted live, located driver is not a LazyLiveStore")
	}
	loc, ok := st.(store.Locator)
	if !ok {
		t.Fatal("adapted live, located driver is not a Locator")
	}
	if got := loc.Dir("ns"); got != "/cache/ns" {
		t.Errorf("Dir = %q, want the driver's /cache/ns", got)
	}
	k := store.Key{Namespace: "ns", ID: "x"}
	if err := ls.SetLive(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Unix(1, 0)}, 42); err != nil {
		t.Fatal(err)
	}
	if e, v, err := ls.GetLive(ctx, k); err != nil || v != 42 || string(e.Value) != "v" {
		t.Errorf("GetLive = %q, %v, %v; want v, 42", e.Value, v, err)
	}
	bad := store.Key{Namespace: "ns", ID: ""}
	if err := ls.SetLazy(ctx, bad, store.Entry{}, 1, 1, nil); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("SetLazy of an empty ID = %v, want ErrInvalidKey", err)
	}
	if _, _, err := ls.GetLive(ctx, bad); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("GetLive of an empty ID = %v, want ErrInvalidKey", err)
	}
}
