package keys

import (
	"strconv"
	"strings"
	"testing"
)

const maxLen = 500

// parse inverts the unhashed forms: it returns the prefix (if any), whether the ID
// came from a user key, and the key or digest. That it exists proves the forms
// injective.
func parse(t *testing.T, id string) (prefix string, hasPrefix, user bool, key string) {
	t.Helper()
	if strings.HasPrefix(id, "@") {
		n, rest, ok := strings.Cut(id[1:], ":")
		l, err := strconv.Atoi(n)
		if !ok || err != nil || l > len(rest) {
			t.Fatalf("bad prefixed form %q", id)
		}
		prefix, hasPrefix, id = rest[:l], true, rest[l:]
	}
	switch {
	case isDigest(id):
		return prefix, hasPrefix, false, id
	case strings.HasPrefix(id, "="):
		return prefix, hasPrefix, true, id[1:]
	case id == "" || id[0] == '#' || id[0] == '@' || strings.HasPrefix(id, oldHashTag):
		t.Fatalf("unparsable ID %q", id)
	}
	return prefix, hasPrefix, true, id
}

func FuzzIDs(f *testing.F) {
	for _, s := range [][2]string{
		{"shop:1:x", "y"}, {"shop:1", "x:y"}, {"", "sha256:00"}, {"", "#ab"}, {"@3:abc", "=x"},
		{"", strings.Repeat("ab", 32)}, {"p", "\xff"}, {"", "a\x00b"}, {"", strings.Repeat("x", 600)},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		if key == "" {
			return // Func rejects empty keys before they get here
		}
		id := UserID(key)
		if prefix != "" {
			id = PrefixedID(prefix, id)
		}
		p, hp, user, k := parse(t, id)
		if p != prefix || hp != (prefix != "") || !user || k != key {
			t.Fatalf("(%q, %q) -> %q parses back as (%q, %q)", prefix, key, id, p, k)
		}
		fit := Fit(id, maxLen)
		if fit != id {
			if len(fit) != 65 || fit[0] != '#' {
				t.Fatalf("hashed form %q", fit)
			}
			return
		}
		if fit[0] == '#' {
			t.Fatalf("unhashed ID %q starts with the hash mark", fit)
		}
	})
}

func TestIDsDigestUnchanged(t *testing.T) {
	d, err := Digest(42)
	if err != nil {
		t.Fatal(err)
	}
	if !isDigest(d) || Fit(d, maxLen) != d {
		t.Fatalf("digest %q changed shape", d)
	}
	if got := UserID(d); got != "="+d {
		t.Fatalf("a user key shaped like a digest is %q, want it escaped", got)
	}
	if got := UserID("user:42"); got != "user:42" {
		t.Fatalf("a plain user key became %q", got)
	}
}
