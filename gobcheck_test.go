package cachier_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

type gobNode struct{ Kids []gobNode }

type gobWide struct {
	A, B, C, D, E, F, G, H, I int64
}

type gobRow struct {
	Name string
	N    int
}

// TestGobBounded: Gob is refused for result types it cannot decode within bounds: a
// recursive type (an entry nested 3,000,000 deep overflowed every reader's stack,
// issue 10 finding 5) and elements that allocate more than GobMaxExpansion bytes per
// encoded byte (finding 6). Ordinary types keep working, and SetDefaults cannot
// bring Gob in behind Wrap's back.
func TestGobBounded(t *testing.T) {
	st := memstore.New(nil)
	_, err := cachier.Wrap(func(context.Context, int) (gobNode, error) { return gobNode{}, nil },
		cachier.Name("gob-rec"), cachier.WithStore(st), cachier.WithCodec(cachier.Gob))
	if !errors.Is(err, cachier.ErrUncacheable) || !strings.Contains(err.Error(), "recursive") {
		t.Errorf("Gob with a recursive type: %v; want ErrUncacheable saying it is recursive", err)
	}
	_, err = cachier.Wrap(func(context.Context, int) ([]gobWide, error) { return nil, nil },
		cachier.Name("gob-wide"), cachier.WithStore(st), cachier.WithCodec(cachier.Gob))
	if !errors.Is(err, cachier.ErrUncacheable) || !strings.Contains(err.Error(), "GobMaxExpansion") {
		t.Errorf("Gob with 72-byte elements: %v; want ErrUncacheable naming GobMaxExpansion", err)
	}
	for _, c := range []cachier.Codec{cachier.CBOR, cachier.JSON} {
		if _, err := cachier.Wrap(func(context.Context, int) (gobNode, error) { return gobNode{}, nil },
			cachier.Name("rec"), cachier.WithStore(st), cachier.WithCodec(c)); err != nil {
			t.Errorf("%T with a recursive type: %v", c, err)
		}
	}
	f, err := cachier.Wrap(func(_ context.Context, n int) ([]gobRow, error) { return []gobRow{{"a", n}}, nil },
		cachier.Name("gob-rows"), cachier.WithStore(st), cachier.WithCodec(cachier.Gob))
	if err != nil {
		t.Fatalf("Gob with small elements: %v", err)
	}
	f.Call(context.Background(), 1)
	if v, err := f.Call(context.Background(), 1); err != nil || len(v) != 1 || v[0].N != 1 || f.Stats().Hits != 1 {
		t.Fatalf("Gob round trip: %v, %v, %+v", v, err, f.Stats())
	}

	cachier.SetDefaults(cachier.WithCodec(cachier.Gob))
	t.Cleanup(func() { cachier.SetDefaults() })
	g, err := cachier.Wrap(func(context.Context, int) (gobNode, error) { return gobNode{}, nil }, cachier.Name("gob-default"), cachier.WithStore(st))
	if err == nil {
		_, err = g.Call(context.Background(), 1)
	}
	if !errors.Is(err, cachier.ErrUncacheable) {
		t.Errorf("Gob from SetDefaults with a recursive type: %v; want ErrUncacheable", err)
	}
}
