package envelope

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, p := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{0xCA}, 1000)} {
		c, f, got, err := Open(Seal(CBOR, Nil, p))
		if err != nil || c != CBOR || f != Nil || !bytes.Equal(got, p) {
			t.Fatalf("Open(Seal(%q)) = %v %v %q %v", p, c, f, got, err)
		}
	}
}

func TestEveryBitFlipIsDetected(t *testing.T) {
	sealed := Seal(JSON, 0, []byte(`{"a":1}`))
	for i := range len(sealed) * 8 {
		b := bytes.Clone(sealed)
		b[i/8] ^= 1 << (i % 8)
		if _, _, _, err := Open(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip of bit %d accepted", i)
		}
	}
	for n := range len(sealed) {
		if _, _, _, err := Open(sealed[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncation to %d bytes accepted", n)
		}
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(Seal(CBOR, 0, []byte("hello")))
	f.Add(Seal(Raw, Nil, nil))
	f.Add([]byte{0xCA, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, fl, p, err := Open(b)
		if err != nil {
			return
		}
		// Whatever opens must be exactly what sealing the parts gives back.
		if !bytes.Equal(Seal(c, fl, p), b) {
			t.Fatalf("Open accepted %x, which is not Seal of its parts", b)
		}
	})
}
