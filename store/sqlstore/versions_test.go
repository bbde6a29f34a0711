package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/storetest"
)

// TestVersions checks what the conformance suite does not: GetVersioned, counters
// that differ only in case or are as long as the contract allows, more counters than
// one statement reads or than the store prepares, and that counters are not
// namespaces.
func TestVersions(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			db := e.open(t)
			s, err := sqlstore.New(db, &sqlstore.Options{Table: freshTable(t, db, e.dialect)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			ctx := context.Background()

			long := strings.Repeat("é", store.MaxIDLen/2)
			names := []string{"tag:A", "tag:a", long, "{tag}", "../../x", "with space\t"}
			want := make([]uint64, len(names))
			for i, n := range names {
				if want[i], err = s.Bump(ctx, n); err != nil {
					t.Fatalf("Bump(%q): %v", n, err)
				}
			}
			if got, err := s.Versions(ctx, names); err != nil || !slices.Equal(got, want) {
				t.Errorf("Versions = %v, %v; want %v", got, err, want)
			}
			if _, err := s.Bump(ctx, long+"x"); !errors.Is(err, store.ErrInvalidKey) {
				t.Errorf("Bump of a name longer than the contract allows: %v", err)
			}

			// Many counters: several statements, unprepared ones.
			many := make([]string, 450)
			for i := range many {
				many[i] = fmt.Sprintf("many:%d", i)
			}
			wantMany := make([]uint64, len(many))
			for _, i := range []int{0, 17, 199, 200, 449} {
				if wantMany[i], err = s.Bump(ctx, many[i]); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.Versions(ctx, many); err != nil || !slices.Equal(got, wantMany) {
				t.Errorf("Versions of %d counters: %v; want %v", len(many), err, wantMany)
			}
			if got, err := s.Versions(ctx, nil); err != nil || len(got) != 0 {
				t.Errorf("Versions of no counters = %v, %v", got, err)
			}

			k := store.Key{Namespace: "ns", ID: "k"}
			if _, vs, err := s.GetVersioned(ctx, k, names); !errors.Is(err, store.ErrNotFound) || vs != nil {
				t.Errorf("GetVersioned of a missing entry = %v, %v; want ErrNotFound and no versions", vs, err)
			}
			at := time.UnixMicro(time.Now().UnixMicro())
			if err := s.Set(ctx, k, store.Entry{Value: []byte("value"), StoredAt: at}); err != nil {
				t.Fatal(err)
			}
			for _, ns := range [][]string{names, names[:1], nil, many[:17], many} {
				e, vs, err := s.GetVersioned(ctx, k, ns)
				var w []uint64
				if len(ns) > 0 && ns[0] == many[0] {
					w = wantMany[:len(ns)]
				} else {
					w = want[:len(ns)]
				}
				if err != nil || string(e.Value) != "value" || !e.StoredAt.Equal(at) || !slices.Equal(vs, w) {
					t.Errorf("GetVersioned with %d counters = %q at %v, %v, %v; want %q at %v, %v",
						len(ns), e.Value, e.StoredAt, vs, err, "value", at, w)
				}
			}
			if nss, err := s.Namespaces(ctx); err != nil || !slices.Equal(nss, []string{"ns"}) {
				t.Errorf("Namespaces = %q, %v; want [ns]", nss, err)
			}
		})
	}
}

// BenchmarkGetVersioned compares a plain Get, GetVersioned with 3 counters (one
// statement) and Get followed by Versions (two): see storetest.BenchmarkVersioned.
func BenchmarkGetVersioned(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			_, s, _, _ := benchStore(b, e)
			storetest.BenchmarkVersioned(b, s)
		})
	}
}
