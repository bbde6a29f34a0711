package store_test

import (
	"context"
	"errors"
	"strings"
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

func TestValidateCounter(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"tag:users", true},
		{"x", true},
		{"héllo wörld/../*?", true},
		{strings.Repeat("a", store.MaxIDLen), true},
		{strings.Repeat("é", store.MaxIDLen/2), true},
		{"", false},
		{strings.Repeat("a", store.MaxIDLen+1), false},
		{"a\x00b", false},
		{"\xff\xfe", false},
	} {
		err := store.ValidateCounter(tc.name)
		switch {
		case tc.ok && err != nil:
			t.Errorf("ValidateCounter(%.20q) = %v, want nil", tc.name, err)
		case !tc.ok && !errors.Is(err, store.ErrInvalidKey):
			t.Errorf("ValidateCounter(%.20q) = %v, want ErrInvalidKey", tc.name, err)
		}
	}
}

func TestNewVersion(t *testing.T) {
	seen := make(map[uint64]bool)
	for range 1000 {
		v := store.NewVersion()
		if v == 0 || seen[v] {
			t.Fatalf("NewVersion = %d, zero or seen before", v)
		}
		seen[v] = true
	}
}
