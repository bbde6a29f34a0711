package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// The adapted store remembers namespaces it found valid, to skip checking them again:
// a namespace it has not seen is still checked, and so is every ID, after and while
// the memory is full.
func TestCheckRemembersOnlyValidNamespaces(t *testing.T) {
	ctx := context.Background()
	ls, ok := store.Adapt(memstore.New(nil)).(store.LiveStore)
	if !ok {
		t.Fatal("adapted memstore is not a LiveStore")
	}
	e := store.Entry{Value: []byte("v"), StoredAt: time.Unix(1, 0)}
	for _, ns := range []string{"a", "b", "c", "d", "e", "f"} { // more than it remembers
		if err := ls.SetLive(ctx, store.Key{Namespace: ns, ID: "x"}, e, 1); err != nil {
			t.Fatalf("SetLive in %q: %v", ns, err)
		}
	}
	for _, k := range []store.Key{
		{Namespace: "a\x00", ID: "x"},
		{Namespace: "\xff", ID: "x"},
		{Namespace: "", ID: "x"},
		{Namespace: "a", ID: ""},
		{Namespace: "a", ID: "x\x00"},
		{Namespace: "f", ID: "\xff"},
	} {
		if err := ls.SetLive(ctx, k, e, 1); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("SetLive(%q) = %v, want ErrInvalidKey", k.String(), err)
		}
		if _, _, err := ls.GetLive(ctx, k); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("GetLive(%q) = %v, want ErrInvalidKey", k.String(), err)
		}
	}
}
