package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"runtime"
	"slices"
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
		// Reusing a buffer and a known name changes nothing but where the parts live.
		for _, buf := range [][]Dep{nil, make([]Dep, 0, 1), make([]Dep, 0, MaxDeps)} {
			c2, m2, p2, err := OpenReuse(b, buf, "tag:a")
			if err != nil || c2 != c || !bytes.Equal(p2, p) || m2.Flags != m.Flags || m2.TTL != m.TTL || !slices.Equal(m2.Deps, m.Deps) {
				t.Fatalf("OpenReuse(%x, cap %d) = %v %+v %q %v; Open gave %v %+v %q", b, cap(buf), c2, m2, p2, err, c, m, p)
			}
		}
	})
}

// TestOpenReuseAllocs: opening a frame whose one dependency is the known name, into a
// buffer that holds it, allocates nothing, which is what a batch of hits relies on.
func TestOpenReuseAllocs(t *testing.T) {
	frame := Seal(Raw, Meta{Deps: []Dep{{"epoch:ns", 7}}}, []byte("v"))
	buf := make([]Dep, 0, 1)
	known := "epoch:ns"
	if n := testing.AllocsPerRun(100, func() {
		_, m, _, err := OpenReuse(frame, buf, known)
		if err != nil || len(m.Deps) != 1 || m.Deps[0].Version != 7 {
			t.Fatalf("OpenReuse = %+v, %v", m, err)
		}
	}); n != 0 {
		t.Errorf("OpenReuse allocated %v times per frame, want 0", n)
	}
}

// TestOpenAllocBounded: a frame that claims many dependencies but holds few bytes is
// refused before Open allocates room for them.
func TestOpenAllocBounded(t *testing.T) {
	frame := Seal(CBOR, Meta{Deps: []Dep{{"a", 1}}}, nil)
	body := frame[:len(frame)-4]
	body[4] = 0x80 // the dependency count, as a 2-byte uvarint: 1024
	body = append(body[:5:5], append([]byte{0x08}, body[5:]...)...)
	frame = binary.BigEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, _, _, err := Open(frame); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 1024 {
		t.Errorf("Open of a %d-byte frame allocated %d bytes", len(frame), per)
	}
}
