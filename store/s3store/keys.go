package s3store

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cachier-go/cachier/store"
)

// Object names.
//
//	<prefix><namespace>/e/<id>   an entry (package store's lease and counter records too)
//
// A namespace or an ID is written in one of two reversible forms:
//
//   - short: percent-escaped, keeping only A-Z a-z 0-9 '-' '_' and '.' (a leading '.' is
//     escaped too, so no path segment is ever "." or ".."); used when the result fits in
//     maxShort bytes, so that keys stay readable in a bucket browser;
//   - long: '~' followed by the unpadded base64url of the bytes, cut into segments of at
//     most maxSegment bytes joined by '/'. A namespace in long form is always exactly two
//     segments, so Namespaces can recognise it with one extra listing.
//
// The short form never contains '~' (it is escaped) and never '/', so the two forms cannot
// collide, and decoding re-encodes and compares, so each string has exactly one name.
// Every path segment is at most 255 bytes (MinIO keeps objects as files and refuses longer
// names) and the longest possible object name is maxPrefixLen+maxNameLen <= 1024 bytes,
// S3's limit.
const (
	maxShort   = 200 // longest short form
	maxSegment = 200 // longest segment of a long form
	longMark   = '~'

	entryDir = "/e/"

	// maxNameLen bounds what a key adds to the prefix: the long form of a 200-byte
	// namespace (1 + 267 bytes, plus one '/'), the kind directory (3), and the long form
	// of a 500-byte ID (1 + 667 bytes, plus three '/').
	// The namespace may be one byte longer: the portable layer's lease records.
	maxNameLen = (1 + 268 + 1) + len(entryDir) + (1 + 667 + 3)
	// maxPrefixLen is the longest Options.Prefix.
	maxPrefixLen = 1024 - maxNameLen
)

var b64 = base64.RawURLEncoding

// shortLen returns the length of the short form of s.
func shortLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if store.NameByte(s[i], i == 0) {
			n++
		} else {
			n += 3
		}
	}
	return n
}

// appendName appends the name of s (short or long form) to b. A long form is split into
// segments: two for a namespace (twoSegments), as many as needed for an ID.
func appendName(b []byte, s string, twoSegments bool) []byte {
	if n := shortLen(s); n <= maxShort {
		if n == len(s) {
			return append(b, s...)
		}
		return store.AppendEscaped(b, s, store.NameByte)
	}
	enc := make([]byte, 1+b64.EncodedLen(len(s)))
	enc[0] = longMark
	b64.Encode(enc[1:], []byte(s))
	if twoSegments {
		half := (len(enc) + 1) / 2
		b = append(b, enc[:half]...)
		b = append(b, '/')
		return append(b, enc[half:]...)
	}
	for len(enc) > maxSegment {
		b = append(b, enc[:maxSegment]...)
		b = append(b, '/')
		enc = enc[maxSegment:]
	}
	return append(b, enc...)
}

// errForeignName reports an object name that this package did not write.
var errForeignName = errors.New("s3store: not a name this store writes")

// parseName decodes a name written by appendName. It rejects anything appendName would
// not have produced for the decoded string, so that a name and a string are one to one.
func parseName(name string, twoSegments bool) (string, error) {
	var s string
	if strings.HasPrefix(name, string(longMark)) {
		raw, err := b64.DecodeString(strings.ReplaceAll(name[1:], "/", ""))
		if err != nil {
			return "", errForeignName
		}
		s = string(raw)
	} else {
		if strings.ContainsRune(name, '/') {
			return "", errForeignName
		}
		var ok bool
		if s, ok = store.Unescape(name); !ok {
			return "", errForeignName
		}
	}
	if s == "" || !utf8.ValidString(s) || string(appendName(nil, s, twoSegments)) != name {
		return "", errForeignName
	}
	return s, nil
}

// nsPrefix returns "<prefix><namespace>/e/", what the entries of namespace start with.
func (s *Store) nsPrefix(namespace string) string {
	b := make([]byte, 0, len(s.prefix)+shortLen(namespace)+len(entryDir))
	b = append(b, s.prefix...)
	b = appendName(b, namespace, true)
	return string(append(b, entryDir...))
}

// objectName returns the name of the entry of k.
func (s *Store) objectName(k store.Key) string {
	b := make([]byte, 0, len(s.prefix)+shortLen(k.Namespace)+len(entryDir)+shortLen(k.ID))
	b = appendName(append(b, s.prefix...), k.Namespace, true)
	return string(appendName(append(b, entryDir...), k.ID, false))
}

// validatePrefix normalises an Options.Prefix: it must be a relative, clean path of
// printable ASCII or UTF-8 that fits the key budget; a missing trailing '/' is added.
func validatePrefix(p string) (string, error) {
	if p == "" {
		return defaultPrefix, nil
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	switch {
	case len(p) > maxPrefixLen:
		return "", fmt.Errorf("s3store: prefix of %d bytes is longer than %d", len(p), maxPrefixLen)
	case !utf8.ValidString(p):
		return "", fmt.Errorf("s3store: prefix %q is not UTF-8", p)
	case strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("s3store: prefix %q starts with '/'", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return "", fmt.Errorf("s3store: prefix %q holds a control character or '\\'", p)
		}
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("s3store: prefix %q has an empty, '.' or '..' segment", p)
		}
	}
	return p, nil
}
