package store

import "testing"

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ s, name string }{
		{"", ""},
		{"plain-Name_1.x", "plain-Name_1.x"},
		{".hidden", "%2Ehidden"},
		{"a/b c%", "a%2Fb%20c%25"},
		{"\x00\xff", "%00%FF"},
	} {
		name := string(AppendEscaped(nil, tc.s, NameByte))
		if name != tc.name {
			t.Errorf("AppendEscaped(%q) = %q, want %q", tc.s, name, tc.name)
		}
		if s, ok := Unescape(name); !ok || s != tc.s {
			t.Errorf("Unescape(%q) = %q, %v; want %q", name, s, ok, tc.s)
		}
	}
	for _, bad := range []string{"%", "%4", "a%4", "%4g", "%zz", "%2e"} {
		if s, ok := Unescape(bad); ok {
			t.Errorf("Unescape(%q) = %q, true; want false", bad, s)
		}
	}
}
