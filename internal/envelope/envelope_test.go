package envelope

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	metas := []Meta{{}, {Flags: Nil}, {TTL: time.Minute}, {Deps: []Dep{{"tag:a", 1}, {"", 0}, {"prefix:é", 1 << 63}}}, {TTL: 1, Deps: []Dep{{"x", 2}}}}
	for _, m := range metas {
		for _, p := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{0xCA}, 1000)} {
			c, got, pay, err := Open(Seal(CBOR, m, p))
			if err != nil || c != CBOR || !bytes.Equal(pay, p) || got.Flags != m.Flags || got.TTL != m.TTL || !reflect.DeepEqual(got.Deps, m.Deps) && len(m.Deps) > 0 {
				t.Fatalf("Open(Seal(%+v, %q)) = %v %+v %q %v", m, p, c, got, pay, err)
			}
		}
	}
}

func TestEveryBitFlipIsDetected(t *testing.T) {
	sealed := Seal(JSON, Meta{TTL: time.Hour, Deps: []Dep{{"tag:x", 7}}}, []byte(`{"a":1}`))
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
	f.Add(Seal(CBOR, Meta{}, []byte("hello")))
	f.Add(Seal(Raw, Meta{Flags: Nil}, nil))
	f.Add(Seal(Gob, Meta{TTL: time.Second, Deps: []Dep{{"tag:a", 1}, {"ns:b", 2}}}, []byte("v")))
	f.Add([]byte{0xCA, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, m, p, err := Open(b)
		if err != nil {
			return
		}
		// Whatever opens must be exactly what sealing the parts gives back.
		if !bytes.Equal(Seal(c, m, p), b) {
			t.Fatalf("Open accepted %x, which is not Seal of its parts", b)
		}
	})
}
