package sqlstore

import (
	"testing"

	"github.com/cachier-go/cachier/store"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, k := range []store.Key{
		{Namespace: "ns", ID: "id"},
		{Namespace: "a:b", ID: "3:x"},
		{Namespace: "n", ID: "k5:nn"},
		{Namespace: "é漢字", ID: "\U0001F600"},
	} {
		got, whole, ok := parsePayload(keyPayload(k))
		if !ok || whole || got != k {
			t.Errorf("parsePayload(keyPayload(%q)) = %q, %v, %v", k, got, whole, ok)
		}
		got, whole, ok = parsePayload(nsPayload(k.Namespace))
		if !ok || !whole || got.Namespace != k.Namespace {
			t.Errorf("parsePayload(nsPayload(%q)) = %q, %v, %v", k.Namespace, got, whole, ok)
		}
	}
	for _, bad := range []string{"", "k", "n", "k:", "kx:ab", "k-1:ab", "k9:ab", "x", "k+2:nsid", "k02:nsid"} {
		if _, _, ok := parsePayload(bad); ok {
			t.Errorf("parsePayload(%q) accepted", bad)
		}
	}
}

// FuzzParsePayload feeds arbitrary notification payloads (another program may notify
// on the channel): no panic, and whatever parses as a key re-encodes to itself.
func FuzzParsePayload(f *testing.F) {
	f.Add("k2:nsid")
	f.Add("nns")
	f.Add("k99999999999999999999:x")
	f.Fuzz(func(t *testing.T, p string) {
		k, whole, ok := parsePayload(p)
		if !ok {
			return
		}
		if whole {
			if nsPayload(k.Namespace) != p {
				t.Errorf("%q -> namespace %q re-encodes differently", p, k.Namespace)
			}
			return
		}
		if keyPayload(k) != p {
			t.Errorf("%q -> %q re-encodes as %q", p, k, keyPayload(k))
		}
	})
}
