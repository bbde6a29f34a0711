package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cachier-go/cachier/store"
)

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
