package named

import (
	"context"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

// FuzzLoad feeds arbitrary saved bytes to a cache: it must never panic, and whatever
// is not a valid record is a counted miss served by the builder.
func FuzzLoad(f *testing.F) {
	f.Add(encodeRecord(codecID(cachier.CBOR), kindData, []string{"named:f:c"}, []uint64{0}, []byte{0xa1, 0x61, 0x61, 0x01}))
	f.Add(encodeRecord(codecID(cachier.CBOR), kindMarker, nil, nil, nil))
	f.Add(encodeRecord(codecID(cachier.CBOR), kindData, nil, nil, []byte{0xbf, 0x61, 0x61}))
	f.Add([]byte{})
	f.Add([]byte{0xCA, 1, 1, 0, 0, 0, 0, 0})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeRecord(b) // must not panic
		st, clk := newMem(t), newClock()
		if err := st.Set(ctx, store.Key{Namespace: "cachier/named/test", ID: "c"}, store.Entry{Value: b, StoredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		m := newTestManager(t, st, clk)
		c := must[*Cache[string, int]](t)(Register[string, int](m, "c",
			Builder(func(context.Context) (map[string]int, error) { return map[string]int{"built": 1}, nil })))
		_ = c.Load(ctx)
		s := c.Stats()
		if s.Loads+s.Builds != 1 {
			t.Fatalf("neither loaded nor built: %+v", s)
		}
		if s.Builds == 1 && c.Len() != 1 {
			t.Fatalf("built map not served")
		}
	})
}
