package keys

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The scalar digests are the encoder's, bit for bit: keys persisted by any store
// stay what they were. Lengths and values straddle every head size.
func TestScalarDigestsMatchEncoder(t *testing.T) {
	want := func(v any) string {
		t.Helper()
		d, err := Digest(v)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ints := []int64{0, 1, -1, 23, 24, -24, -25, 255, 256, -256, -257, 65535, 65536, -65536, -65537,
		math.MaxUint32, math.MaxUint32 + 1, -math.MaxUint32 - 1, -math.MaxUint32 - 2, math.MaxInt64, math.MinInt64}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		ints = append(ints, int64(r.Uint64())>>r.IntN(64))
	}
	for _, n := range ints {
		if got := DigestInt(n); got != want(n) {
			t.Fatalf("DigestInt(%d) = %s, encoder %s", n, got, want(n))
		}
		if n >= math.MinInt32 && n <= math.MaxInt32 {
			if got := DigestInt(n); got != want(int32(n)) {
				t.Fatalf("DigestInt(int32 %d) differs from the encoder", n)
			}
		}
		if got := DigestUint(uint64(n)); got != want(uint64(n)) {
			t.Fatalf("DigestUint(%d) = %s, encoder %s", uint64(n), got, want(uint64(n)))
		}
	}
	for _, b := range []bool{false, true} {
		if got := DigestBool(b); got != want(b) {
			t.Fatalf("DigestBool(%v) differs from the encoder", b)
		}
	}
	strs := []string{"", "a", "héllo", "\xff\xfe invalid UTF-8", "\x00"}
	for _, n := range []int{23, 24, 25, 118, 119, 120, 127, 128, 255, 256, 257, 1000, 65535, 65536, 70000} {
		strs = append(strs, strings.Repeat("x", n))
	}
	for _, s := range strs {
		if got := DigestString(s); got != want(s) {
			t.Fatalf("DigestString(%d bytes) = %s, encoder %s", len(s), got, want(s))
		}
	}
}

type textual int

func (textual) MarshalText() ([]byte, error) { return []byte("t"), nil }

func TestScalarOf(t *testing.T) {
	type named int
	if DigestInt(300) != func() string { d, _ := Digest(named(300)); return d }() {
		t.Fatal("a named integer type encodes unlike its kind")
	}
	for _, c := range []struct {
		t    reflect.Type
		want Scalar
	}{
		{reflect.TypeFor[int](), Int}, {reflect.TypeFor[int8](), Int}, {reflect.TypeFor[named](), Int},
		{reflect.TypeFor[uint16](), Uint}, {reflect.TypeFor[string](), String}, {reflect.TypeFor[bool](), Bool},
		{reflect.TypeFor[float64](), NotScalar}, {reflect.TypeFor[time.Duration](), Int},
		{reflect.TypeFor[time.Month](), Int}, // a String method is no marshaler
		{reflect.TypeFor[struct{ A int }](), NotScalar}, {reflect.TypeFor[textual](), NotScalar},
	} {
		if got := ScalarOf(c.t); got != c.want {
			t.Errorf("ScalarOf(%v) = %d, want %d", c.t, got, c.want)
		}
	}
}
