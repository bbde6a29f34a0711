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
		got, whole, origin, ok := parsePayload(keyPayload(k))
		if !ok || whole || got != k || origin != "" {
			t.Errorf("parsePayload(keyPayload(%q)) = %q, %v, %q, %v", k, got, whole, origin, ok)
		}
		for _, id := range []string{"0123456789abcdef", "o1:k", ":"} {
			got, whole, origin, ok = parsePayload(originPayload(id) + keyPayload(k))
			if !ok || whole || got != k || origin != id {
				t.Errorf("parsePayload(originPayload(%q) + keyPayload(%q)) = %q, %v, %q, %v", id, k, got, whole, origin, ok)
			}
		}
		got, whole, origin, ok = parsePayload(nsPayload(k.Namespace))
		if !ok || !whole || got.Namespace != k.Namespace || origin != "" {
			t.Errorf("parsePayload(nsPayload(%q)) = %q, %v, %q, %v", k.Namespace, got, whole, origin, ok)
		}
	}
	for _, bad := range []string{"", "k", "n", "k:", "kx:ab", "k-1:ab", "k9:ab", "x", "k+2:nsid", "k02:nsid",
		"o", "o0:k2:nsid", "o2:idk", "o2:idnns", "o2:id", "o9:id", "o2:idx2:nsid", "o2:ido2:idk2:nsid"} {
		if _, _, _, ok := parsePayload(bad); ok {
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
	f.Add("o2:idk2:nsid")
	f.Fuzz(func(t *testing.T, p string) {
		k, whole, origin, ok := parsePayload(p)
		if !ok {
			return
		}
		if origin != "" {
			if whole || originPayload(origin)+keyPayload(k) != p {
				t.Errorf("%q -> %q from %q re-encodes as %q", p, k, origin, originPayload(origin)+keyPayload(k))
			}
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
