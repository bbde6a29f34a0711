package keys

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct{ A, B int }

type okArg struct {
	Name  string
	Tags  []string
	Attrs map[string]int
	In    inner
	P     *inner
	When  time.Time
}

type hidden struct {
	Visible int
	secret  string
}

type excluded struct {
	A int `cbor:"-"`
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string // "" = accepted; else a substring of the error
	}{
		{0, ""}, {"", ""}, {okArg{}, ""}, {[3]byte{}, ""}, {map[int][]string{}, ""},
		{hidden{}, "hidden.secret is unexported"},
		{struct{ F func() }{}, ".F has kind func"},
		{struct{ C chan int }{}, ".C has kind chan"},
		{struct{ V any }{}, ".V is an interface"},
		{[]complex64{}, "has kind complex64"},
		{map[string]struct{ x int }{}, "[value].x is unexported"},
		{excluded{}, "excluded from encoding"},
	} {
		err := Check(reflect.TypeOf(tc.v), ForKey)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%T rejected: %v", tc.v, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%T: err = %v, want it to contain %q", tc.v, err, tc.want)
		}
	}
}

func TestDigestIsCanonical(t *testing.T) {
	a := map[string]int{"x": 1, "y": 2, "z": 3}
	b := map[string]int{"z": 3, "y": 2, "x": 1}
	da, _ := Digest(a)
	db, _ := Digest(b)
	if da != db {
		t.Fatal("map order changed the digest")
	}
	utc := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	d1, _ := Digest(utc)
	d2, _ := Digest(utc.In(time.FixedZone("x", 3600)))
	if d1 != d2 {
		t.Fatal("the same instant in two zones has two digests")
	}
	seen := map[string]any{}
	for _, v := range []any{0, 1, -1, "", "0", []int{}, []int{0}, okArg{}, okArg{Name: "a"}, okArg{Tags: []string{"a"}}, int64(1) << 40} {
		d, err := Digest(v)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[d]; ok && !reflect.DeepEqual(prev, v) {
			t.Fatalf("%#v and %#v share a digest", prev, v)
		}
		seen[d] = v
	}
}

func TestMemoizable(t *testing.T) {
	for v, want := range map[any]bool{
		0: true, "": true, inner{}: true, [2]string{}: true,
		1.5: false, hidden{}: false, time.Time{}: false,
	} {
		if got := Memoizable(reflect.TypeOf(v)); got != want {
			t.Errorf("Memoizable(%T) = %v", v, got)
		}
	}
	if Memoizable(reflect.TypeOf(&inner{})) || Memoizable(reflect.TypeOf(okArg{})) {
		t.Error("pointers and slices must not be memoizable")
	}
}

// FuzzDigest: equal strings give equal digests and different ones different digests.
func FuzzDigest(f *testing.F) {
	f.Add("a", "b")
	f.Add("", "\x00")
	f.Fuzz(func(t *testing.T, a, b string) {
		da, err1 := Digest(okArg{Name: a, Tags: []string{b}})
		db, err2 := Digest(okArg{Name: b, Tags: []string{a}})
		if err1 != nil || err2 != nil {
			t.Skip() // invalid UTF-8 strings are still encoded; any error is the encoder's
		}
		if (a == b) != (da == db) {
			t.Fatalf("a=%q b=%q: equal=%v but digests equal=%v", a, b, a == b, da == db)
		}
	})
}
