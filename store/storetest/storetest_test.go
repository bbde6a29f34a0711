package storetest

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cachier-go/cachier/store"
)

func TestNamespace(t *testing.T) {
	a, b := Namespace(t), Namespace(t)
	if a == b {
		t.Errorf("Namespace returned %q twice", a)
	}
	for _, ns := range []string{a, b} {
		if err := store.ValidateNamespace(ns); err != nil {
			t.Errorf("Namespace returned an invalid namespace: %v", err)
		}
		if !strings.HasPrefix(ns, "storetest/TestNamespace/") {
			t.Errorf("Namespace = %q, want it to start with storetest/TestNamespace/", ns)
		}
	}
	t.Run(strings.Repeat("\u00e9", 150), func(t *testing.T) {
		ns := Namespace(t)
		if err := store.ValidateNamespace(ns); err != nil {
			t.Errorf("Namespace of a long test name: %v", err)
		}
		if !utf8.ValidString(ns) || len(ns) > NamespaceLen {
			t.Errorf("Namespace of a long test name = %q (%d bytes)", ns, len(ns))
		}
	})
}

// TestKeyValidate pins the part of the contract that lets stores assume valid keys.
func TestKeyValidate(t *testing.T) {
	ok := "storetest/ns"
	bad := []store.Key{
		{Namespace: "", ID: "x"},
		{Namespace: ok, ID: ""},
		{Namespace: strings.Repeat("n", store.MaxNamespaceLen+1), ID: "x"},
		{Namespace: ok, ID: strings.Repeat("i", store.MaxIDLen+1)},
		{Namespace: ok, ID: "a\x00b"},
		{Namespace: "a\x00b", ID: "x"},
		{Namespace: ok, ID: "\xff\xfe"},
		{Namespace: "\xc3\x28", ID: "x"},
	}
	for _, k := range bad {
		if err := k.Validate(); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Validate(%q) = %v, want an error matching store.ErrInvalidKey", k, err)
		}
	}
	good := []store.Key{
		{Namespace: ok, ID: "x"},
		{Namespace: strings.Repeat("n", store.MaxNamespaceLen), ID: strings.Repeat("i", store.MaxIDLen)},
	}
	for _, id := range oddIDs {
		good = append(good, store.Key{Namespace: ok, ID: id})
	}
	for _, k := range good {
		if err := k.Validate(); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", k, err)
		}
	}
}
