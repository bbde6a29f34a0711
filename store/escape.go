package store

import "strings"

// The readable, reversible form of a key in an engine's names (a directory, an object
// name): the bytes a driver keeps stand for themselves and every other byte is %XX in
// upper-case hex. Decoding does not check that a name is canonical; a driver that needs
// each name to map to one string escapes what it decoded again and compares.

const upperHex = "0123456789ABCDEF"

// NameByte reports whether c stands for itself in a name that a file system or an
// object store keeps: an ASCII letter or digit, '-' or '_', or a '.' that is not first
// (so that no name is "." or ".." or hidden).
func NameByte(c byte, first bool) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		return true
	case c == '.':
		return !first
	}
	return false
}

// AppendEscaped appends s to b, with every byte that keep refuses written as %XX. keep
// is told whether the byte is the first of s.
func AppendEscaped(b []byte, s string, keep func(c byte, first bool) bool) []byte {
	for i := range len(s) {
		if c := s[i]; keep(c, i == 0) {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return b
}

// Unescape decodes every %XX of s (upper-case hex, as AppendEscaped writes it) and
// keeps every other byte. It reports false for a '%' that two such digits do not
// follow.
func Unescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, lo := strings.IndexByte(upperHex, s[i+1]), strings.IndexByte(upperHex, s[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b), true
}
