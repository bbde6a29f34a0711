package s3store

import (
	"bytes"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
)

func TestEntryRoundTrip(t *testing.T) {
	for _, at := range []time.Time{
		{},
		time.Unix(0, 0),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 5*3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	} {
		for _, v := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{0, 0xff}, 1000)} {
			b := encodeEntry(store.Entry{Value: v, StoredAt: at})
			e, why := decodeEntry(b)
			if why != "" {
				t.Fatalf("decodeEntry(encodeEntry(%d bytes at %s)): %s", len(v), at, why)
			}
			if !bytes.Equal(e.Value, v) || !e.StoredAt.Equal(at) || e.StoredAt.IsZero() != at.IsZero() {
				t.Errorf("round trip of %d bytes at %s = %d bytes at %s", len(v), at, len(e.Value), e.StoredAt)
			}
		}
	}
}

// TestDecodeEntryDamage checks that what is not an entry record is corrupt. Damage
// to the value of a record (a flipped bit, a truncation) is the envelope's to find:
// the object carries no checksum of its own.
func TestDecodeEntryDamage(t *testing.T) {
	good := encodeEntry(store.Entry{Value: []byte("hello, world"), StoredAt: time.Now()})
	for name, b := range map[string][]byte{
		"empty":     {},
		"short":     good[:headerLen-1],
		"foreign":   []byte("just some bytes someone put here, long enough for a header"),
		"old":       []byte("cS3E\x01\x00\x00\x00 the layout before store.AppendRecord"),
		"tagged":    store.AppendRecord(nil, store.Entry{}, []byte("t")),
		"bad flags": append([]byte("cE1\x80"), good[4:]...),
	} {
		if e, why := decodeEntry(b); why == "" {
			t.Errorf("%s: decodeEntry accepted damaged bytes as %q", name, e.Value)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(store.Entry{Value: []byte("v"), StoredAt: time.Now()}))
	f.Add([]byte{})
	f.Add([]byte("cE1"))
	f.Add(encodeEntry(store.Entry{Value: []byte("v"), StoredAt: time.Unix(1, 2), ExpiresAt: time.Unix(60, 3)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, why := decodeEntry(b)
		if why != "" {
			return
		}
		// Whatever it accepts re-encodes to the same bytes: no second reading of an object.
		if re := encodeEntry(e); !bytes.Equal(re, b) {
			t.Fatalf("decodeEntry accepted %x, which re-encodes as %x", b, re)
		}
	})
}

// TestDecodeHeader checks the Info a listing reads from an object's first bytes and
// its size in the listing; a listed size shorter than the header read (the object was
// rewritten with a longer header between the listing and the read) is corrupt, never
// an entry of negative size.
func TestDecodeHeader(t *testing.T) {
	at, exp := time.Unix(1_700_000_000, 123), time.Unix(1_700_003_600, 456)
	plain := encodeEntry(store.Entry{Value: []byte("hello"), StoredAt: at})
	expiring := encodeEntry(store.Entry{Value: []byte("hello"), StoredAt: at, ExpiresAt: exp})
	for _, b := range [][]byte{plain, expiring} {
		head := b[:min(len(b), store.MaxRecordHeader)] // what the ranged read returns
		e, why := decodeEntry(b)
		if why != "" || e.StoredAt.IsZero() {
			t.Fatalf("decodeEntry: %s", why)
		}
		info, why := decodeHeader(head, listed{id: "k", size: int64(len(b))})
		want := store.Info{Key: store.Key{ID: "k"}, Size: 5, StoredAt: e.StoredAt, ExpiresAt: e.ExpiresAt}
		if why != "" || info != want {
			t.Errorf("decodeHeader of %d bytes = %+v, %q; want %+v", len(b), info, why, want)
		}
	}
	head := expiring[:store.MaxRecordHeader]
	for name, tc := range map[string]struct {
		b    []byte
		size int64
	}{
		"listed shorter than its header": {head, int64(len(plain))},
		"tagged":                         {store.AppendRecord(nil, store.Entry{}, []byte("t")), 100},
		"foreign":                        {[]byte("just some bytes someone put here, long enough"), 100},
	} {
		if info, why := decodeHeader(tc.b, listed{id: "k", size: tc.size}); why == "" {
			t.Errorf("%s: decodeHeader = %+v; want it corrupt", name, info)
		}
	}
}
