package store

import "testing"

func TestEscape(t *testing.T) {
	// Each string and its name.
	for s, want := range map[string]string{
		"":               "",
		"plain-Name_1.x": "plain-Name_1.x",
		".hidden":        "%2Ehidden",
		"a/b c%":         "a%2Fb%20c%25",
		"\x00\xff":       "%00%FF",
	} {
		name := string(AppendEscaped(nil, s, NameByte))
		if name != want {
			t.Errorf("AppendEscaped(%q) = %q, want %q", s, name, want)
		}
		if got, ok := Unescape(name); !ok || got != s {
			t.Errorf("Unescape(%q) = %q, %v; want %q", name, got, ok, s)
		}
	}
	for _, bad := range []string{"%", "%4", "a%4", "%4g", "%zz", "%2e"} {
		if s, ok := Unescape(bad); ok {
			t.Errorf("Unescape(%q) = %q, true; want false", bad, s)
		}
	}
}
