package cachier_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

type wideRow struct {
	Cells [32]int64 // 256 bytes in memory, one byte ({}) in a hostile entry
	Name  string
}

// TestDecodeBounded: a crafted CBOR or JSON entry whose bytes each stand for a 256-byte
// element is refused before decoding, so a hit allocates at most about
// DecodeExpansion times the entry's size (issue 10 finding 6); a real entry of the
// same type is still a hit.
func TestDecodeBounded(t *testing.T) {
	const n = 100_000
	var cb bytes.Buffer // an array of 100,000 empty maps
	cb.Write(binary.BigEndian.AppendUint32([]byte{0x9a}, n))
	cb.Write(bytes.Repeat([]byte{0xa0}, n))
	js := "[" + strings.Repeat("{},", n-1) + "{}]"
	for _, tc := range []struct {
		name    string
		codec   cachier.Codec
		id      envelope.Codec
		payload []byte
	}{
		{"CBOR", cachier.CBOR, envelope.CBOR, cb.Bytes()},
		{"JSON", cachier.JSON, envelope.JSON, []byte(js)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := memstore.New(nil)
			var computed int
			f, err := cachier.Wrap(func(_ context.Context, n int) ([]wideRow, error) {
				computed++
				return make([]wideRow, n), nil
			}, cachier.Name("decode-bound"), cachier.WithStore(st), cachier.WithCodec(tc.codec))
			if err != nil {
				t.Fatal(err)
			}
			// A real entry: 1000 zero rows, each spelling out its 32 cells, is a hit.
			f.Call(ctx, 1000)
			if _, err := f.Call(ctx, 1000); err != nil || computed != 1 {
				t.Fatalf("a real entry: %v, computed %d times, want 1", err, computed)
			}
			// The crafted entry would decode into 100,000 rows of 272 bytes, 27 MB.
			entry := envelope.Seal(tc.id, envelope.Meta{}, tc.payload)
			k, err := f.Key(7)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Set(ctx, k, store.Entry{Value: entry, StoredAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			v, err := f.Call(ctx, 7)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			limit := uint64(cachier.DecodeExpansion*len(entry)) + 2<<20
			t.Logf("a hit on a %d-byte crafted entry allocated %d bytes (%.1fx; decoded it would hold %d bytes)", len(entry), alloc, float64(alloc)/float64(len(entry)), n*272)
			if err != nil || len(v) != 7 {
				t.Fatalf("crafted entry: %d rows, %v; want a miss that computes 7 rows", len(v), err)
			}
			if alloc > limit {
				t.Errorf("a hit on a %d-byte entry allocated %d bytes, more than %d", len(entry), alloc, limit)
			}
			if s := f.Stats(); s.DecodeErrors != 1 {
				t.Errorf("DecodeErrors = %d, want 1 (the crafted entry)", s.DecodeErrors)
			}
		})
	}
}

// FuzzCBORBudget: the pre-decode scan never panics on any bytes, and an entry it
// accepts decodes without allocating past the bound's order.
func FuzzCBORBudget(f *testing.F) {
	f.Add([]byte{0x9a, 0, 1, 0, 0, 0xa0})
	f.Add([]byte{0x81, 0xa1, 0x64, 'N', 'a', 'm', 'e', 0x61, 'x'})
	f.Add([]byte{0x9f, 0xbf, 0xff, 0xff})
	st := memstore.New(nil)
	g, err := cachier.Wrap(func(context.Context, int) ([]wideRow, error) { return nil, nil }, cachier.Name("fuzz-budget"), cachier.WithStore(st))
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	k, _ := g.Key(1)
	f.Fuzz(func(t *testing.T, payload []byte) {
		entry := envelope.Seal(envelope.CBOR, envelope.Meta{}, payload)
		if err := st.Set(ctx, k, store.Entry{Value: entry, StoredAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		_, _ = g.Call(ctx, 1) // must not panic
	})
}

// FuzzJSONBudget: the pre-decode scan of JSON never panics on any bytes.
func FuzzJSONBudget(f *testing.F) {
	f.Add([]byte(`[{},{}]`))
	f.Add([]byte(`[{"Name":"x","Cells":[1,2]}, null]`))
	f.Add([]byte(`[{"na\u006de":"x"}`))
	st := memstore.New(nil)
	g, err := cachier.Wrap(func(context.Context, int) ([]wideRow, error) { return nil, nil },
		cachier.Name("fuzz-budget-json"), cachier.WithStore(st), cachier.WithCodec(cachier.JSON))
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	k, _ := g.Key(1)
	f.Fuzz(func(t *testing.T, payload []byte) {
		entry := envelope.Seal(envelope.JSON, envelope.Meta{}, payload)
		if err := st.Set(ctx, k, store.Entry{Value: entry, StoredAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		_, _ = g.Call(ctx, 1) // must not panic
	})
}
