package cachier

import (
	"bytes"
	"testing"
)

func TestFailureRecordRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		notFound bool
		sentinel string
		msg      string
	}{{false, "", ""}, {true, "x: not found", "user 1: x: not found"}, {false, "s", string(bytes.Repeat([]byte("é"), maxFailText))}} {
		ce, sentinel, err := decodeFailure(encodeFailure(tc.notFound, tc.sentinel, tc.msg))
		if err != nil {
			t.Fatal(err)
		}
		want := tc.msg
		if len(want) > maxFailText {
			want = want[:maxFailText] // é is 2 bytes: the cut falls on a boundary
		}
		if ce.NotFound != tc.notFound || sentinel != tc.sentinel || ce.Message != want {
			t.Fatalf("round trip of %+v: %+v %q", tc, ce, sentinel)
		}
	}
}

// Whatever the bytes, decodeFailure returns an error or a record that round-trips; it
// never panics.
func FuzzDecodeFailure(f *testing.F) {
	f.Add(encodeFailure(false, "", "boom"))
	f.Add(encodeFailure(true, "sql: no rows in result set", "user 7: sql: no rows in result set"))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		ce, sentinel, err := decodeFailure(b)
		if err != nil {
			return
		}
		ce2, sentinel2, err := decodeFailure(encodeFailure(ce.NotFound, sentinel, ce.Message))
		if err != nil || *ce2 != *ce || sentinel2 != sentinel {
			t.Fatalf("%x decoded to %+v %q, which does not round-trip: %+v %q %v", b, ce, sentinel, ce2, sentinel2, err)
		}
	})
}
