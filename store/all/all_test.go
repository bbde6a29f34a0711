package all_test

import (
	"slices"
	"testing"

	"github.com/cachier-go/cachier/store"
	_ "github.com/cachier-go/cachier/store/all"
)

// TestSchemes checks that importing the package registers every store's schemes.
func TestSchemes(t *testing.T) {
	got := store.Schemes()
	for _, want := range []string{"file", "mem", "redis", "rediss", "redis+cluster", "redis+sentinel", "memcache", "memcached",
		"postgres", "postgresql", "mysql", "sqlite", "mongodb", "mongodb+srv", "s3"} {
		if !slices.Contains(got, want) {
			t.Errorf("scheme %q is not registered; registered: %v", want, got)
		}
	}
}
