package redisstore

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cachier-go/cachier/store"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc-._/~", "abc-._/~"},
		{"a:b", "a%3Ab"},
		{"{tag}", "%7Btag%7D"},
		{"%", "%25"},
		{"*?[]\\^", "%2A%3F%5B%5D%5C%5E"},
		{"a b\t", "a%20b%09"},
		{"é漢", "é漢"},
	} {
		if got := escape(tc.in); got != tc.want {
			t.Errorf("escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := unescape(tc.want); err != nil || back != tc.in {
			t.Errorf("unescape(%q) = %q, %v; want %q", tc.want, back, err, tc.in)
		}
	}
	// Only canonical escapes are accepted, so a name maps back to one string only.
	for _, bad := range []string{"%", "%2", "%zz", "%41", "%3a", "a:b", "{", "}", "a b", "*"} {
		if got, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) = %q, nil; want an error", bad, got)
		}
	}
}

func TestKeyLayout(t *testing.T) {
	kr, err := newKeyer("app:cache")
	if err != nil {
		t.Fatal(err)
	}
	k := store.Key{Namespace: "main.fetch/v2", ID: "{user}:42"}
	if got, want := kr.key(k, kindValue), "app:cache:{main.fetch/v2:%7Buser%7D%3A42}:v"; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
	if got, want := kr.pattern("a*b"), `app:cache:{a%2Ab:*}:v`; got != want {
		t.Errorf("pattern = %q, want %q", got, want)
	}
	// The portable layer's records: a lease shares its entry's hash tag and channel,
	// a counter has its own, and neither is matched by a user namespace's pattern.
	lk := store.Key{Namespace: store.InternalPrefix + k.Namespace, ID: k.ID}
	if got, want := kr.name(lk), "app:cache:{main.fetch/v2:%7Buser%7D%3A42}:l"; got != want {
		t.Errorf("lease record = %q, want %q", got, want)
	}
	if kr.channel(lk) != kr.channel(k) || kr.channel(k) != "app:cache:{main.fetch/v2:%7Buser%7D%3A42}:c" {
		t.Errorf("channels of entry and lease = %q, %q; want one", kr.channel(k), kr.channel(lk))
	}
	if got, want := kr.pattern(lk.Namespace), `app:cache:{main.fetch/v2:*}:l`; got != want {
		t.Errorf("lease pattern = %q, want %q", got, want)
	}
	ck := store.Key{Namespace: store.InternalPrefix, ID: "tag:{x}"}
	if got, want := kr.name(ck), "app:cache:{%01:tag%3A%7Bx%7D}:v"; got != want {
		t.Errorf("counter record = %q, want %q", got, want)
	}
	for _, rk := range []store.Key{k, lk, ck} {
		if got, ok := kr.parse(kr.name(rk)); !ok || got != rk {
			t.Errorf("parse(name(%+v)) = %+v, %v", rk, got, ok)
		}
	}
	kr2, _ := newKeyer("p*[x]")
	if got, want := kr2.allPattern(), `p\*\[x\]:{*`; got != want {
		t.Errorf("allPattern = %q, want %q", got, want)
	}
	for _, name := range []string{
		"app:cache:{a:b}:x:v", "app:cache:{a}:v", "app:cache:{a:b:c}:v", "app:cache:{a:b}v",
		"other:{a:b}:v", "app:cache:{a:%zz}:v", "app:cache:{a:b}:", "", "app:cache:{a:b}:c",
		"app:cache:{%01a:b}:v", "app:cache:{%01a:b}:l", "app:cache:{a:b}:x",
	} {
		if k, ok := kr.parse(name); ok {
			t.Errorf("parse(%q) = %+v, true; want false", name, k)
		}
	}
}

// names builds a batch's names into one buffer; each must be name's, also when a
// later key's escapes outgrow the buffer and when namespaces alternate.
func TestNames(t *testing.T) {
	kr, err := newKeyer("app:cache")
	if err != nil {
		t.Fatal(err)
	}
	ks := []store.Key{
		{Namespace: "ns", ID: "plain"},
		{Namespace: "ns", ID: "{a}:b"},
		{Namespace: "ns", ID: strings.Repeat("%", 40)}, // 80 more bytes than sized for
		{Namespace: store.InternalPrefix + "ns", ID: "lease"},
		{Namespace: "other ns", ID: "x"},
		{Namespace: "ns", ID: "again"},
		{Namespace: store.InternalPrefix, ID: "tag:x"},
		{Namespace: "other ns", ID: "y"},
	}
	for n := range len(ks) + 1 {
		got := kr.names(ks[:n])
		if len(got) != n {
			t.Fatalf("names of %d keys: %d names", n, len(got))
		}
		for i, k := range ks[:n] {
			if want := kr.name(k); got[i] != want {
				t.Errorf("names(ks[:%d])[%d] = %q, want %q", n, i, got[i], want)
			}
		}
	}
	// Pooled memory, used again: longer batches, then shorter ones, in one nameBuf.
	nb := kr.namesPooled(ks[:1])
	for _, n := range []int{1, len(ks), 3, len(ks), 0, 5} {
		nb.fill(kr, ks[:n])
		if len(nb.names) != n {
			t.Fatalf("namesPooled of %d keys: %d names", n, len(nb.names))
		}
		for i, k := range ks[:n] {
			if want := kr.name(k); nb.names[i] != want {
				t.Errorf("pooled names(ks[:%d])[%d] = %q, want %q", n, i, nb.names[i], want)
			}
		}
	}
	nb.put()
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"cachier", "app:cache", "a*b", "x-1.2/3"} {
		if err := validatePrefix(p); err != nil {
			t.Errorf("validatePrefix(%q): %v", p, err)
		}
	}
	for _, p := range []string{"", "a b", "{a}", "a}", "tab\t", "é", strings.Repeat("x", 65), "nul\x00"} {
		if err := validatePrefix(p); err == nil {
			t.Errorf("validatePrefix(%q) = nil; want an error", p)
		}
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("New(nil client) = nil error")
	}
}

func TestStamp(t *testing.T) {
	// In time order, the zero time first; 1500 and 2500 are outside UnixNano's range
	// and clamp, so the order of their stamps is only not decreasing.
	times := []time.Time{
		{}, time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(-1<<30, 0), time.Unix(0, -1),
		time.Unix(0, 0), time.Unix(0, 1), time.Unix(1<<30, 5), time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		// Byte order is time order, which the DeleteBefore script relies on.
		c := bytes.Compare(stampBytes(times[i-1]), stampBytes(times[i]))
		if c > 0 || c == 0 && i != 1 && i != len(times)-1 {
			t.Errorf("stamp of %s is not below that of %s", times[i-1], times[i])
		}
	}
	for _, at := range []time.Time{{}, time.Unix(-1<<30, 0), time.Unix(0, -1), time.Unix(0, 0), time.Unix(1<<30, 5)} {
		if got := unstamp(stamp(at)); !got.Equal(at) {
			t.Errorf("unstamp(stamp(%s)) = %s", at, got)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(store.Entry{Value: []byte("v"), StoredAt: time.Now()}))
	f.Add([]byte{})
	f.Add([]byte{'c', 1})
	f.Add([]byte{'c', 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		again := encodeRecord(e)
		if !bytes.Equal(again, b) {
			t.Fatalf("decode/encode changed %x into %x", b, again)
		}
	})
}

func FuzzKeyRoundTrip(f *testing.F) {
	for _, s := range []string{"a", "{a}", "a:b", "%", "}:v", "é", "\x7f", "*?[]"} {
		f.Add(s, s)
	}
	kr, _ := newKeyer("cachier")
	f.Fuzz(func(t *testing.T, ns, id string) {
		k := store.Key{Namespace: ns, ID: id}
		if k.Validate() != nil {
			return
		}
		for _, rk := range []store.Key{k, {Namespace: store.InternalPrefix + ns, ID: id}, {Namespace: store.InternalPrefix, ID: id}} {
			name := kr.name(rk)
			// One hash tag, and it holds the whole escaped key.
			open, close := strings.IndexByte(name, '{'), strings.IndexByte(name, '}')
			if strings.Count(name, "{") != 1 || strings.Count(name, "}") != 1 || open > close {
				t.Fatalf("key %q has more than one hash tag", name)
			}
			got, ok := kr.parse(name)
			if !ok || got != rk {
				t.Fatalf("parse(name(%+v)) = %+v, %v", rk, got, ok)
			}
			if !utf8.ValidString(name) {
				t.Fatalf("key %q is not UTF-8", name)
			}
		}
		rks := []store.Key{k, {Namespace: store.InternalPrefix + ns, ID: id}, {Namespace: store.InternalPrefix, ID: id}, k}
		for i, name := range kr.names(rks) {
			if name != kr.name(rks[i]) {
				t.Fatalf("names(%+v)[%d] = %q, want %q", rks, i, name, kr.name(rks[i]))
			}
		}
		if kr.channel(k) != kr.channel(store.Key{Namespace: store.InternalPrefix + ns, ID: id}) {
			t.Fatalf("entry and lease of %+v have different channels", k)
		}
		// The namespace pattern's literal part has no glob metacharacter.
		if lit := strings.TrimSuffix(kr.pattern(ns), "*}:v"); strings.ContainsAny(lit, `*?[]\`) {
			t.Fatalf("pattern %q has a metacharacter in its literal part", lit)
		}
	})
}

// names returns the record names of ks, as name does, through appendNames (what
// GetMany uses, with pooled buffers): the tests' and BenchmarkKeyNames' way in.
func (kr keyer) names(ks []store.Key) []string {
	_, out := kr.appendNames(nil, make([]string, len(ks)), ks)
	return out
}
