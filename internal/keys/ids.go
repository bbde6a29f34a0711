package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Store IDs come in disjoint forms, so that no string a user's key function or
// Prefix returns can make two different arguments share an ID:
//
//	digest    64 lowercase hex digits: the SHA-256 of the argument (Digest)
//	user      a WithKey key as it is ("user:42"), when it is text that fits and
//	          starts with none of '=', '#', '@', "sha256:" and is not 64 hex digits
//	escaped   "=" + a WithKey key that does start so (or is 64 hex digits)
//	prefixed  "@" + decimal byte length of the prefix + ":" + prefix + a form above
//	hashed    "#" + the hex SHA-256 of one of the forms above, when that form is
//	          longer than the store allows or is not UTF-8 without NUL
//
// Each unhashed form can be parsed back (see the tests), so they are injective; a
// hashed form starts with a byte no unhashed form starts with, so it can equal
// another ID only through a SHA-256 collision. Digest IDs are unchanged from the
// first format; prefixed and hashed IDs, and user keys that needed escaping, differ
// from it, which costs one cache miss each after upgrading.
//
// "sha256:" is escaped because the first format hashed long keys into
// "sha256:<hex>": a user key of that shape must not read an entry written then.
const (
	escapeMark = '='
	hashMark   = '#'
	prefixMark = '@'
	oldHashTag = "sha256:"
)

// UserID is the ID form of a key returned by a WithKey function, before Fit.
func UserID(key string) string {
	if key == "" || key[0] == escapeMark || key[0] == hashMark || key[0] == prefixMark ||
		strings.HasPrefix(key, oldHashTag) || isDigest(key) {
		return string(escapeMark) + key
	}
	return key
}

// PrefixedID puts prefix in front of id (a digest or a UserID), in a form that
// cannot be confused with another prefix and id: prefix "shop:1:x" with id "y" and
// prefix "shop:1" with id "x:y" give different IDs. Apply Fit to the result.
func PrefixedID(prefix, id string) string {
	return string(prefixMark) + strconv.Itoa(len(prefix)) + ":" + prefix + id
}

// Fit returns id if a store accepts it (at most maxLen bytes of UTF-8 without NUL),
// and otherwise "#" and its hex SHA-256, which every store accepts.
func Fit(id string, maxLen int) string {
	if len(id) <= maxLen && utf8.ValidString(id) && !strings.ContainsRune(id, 0) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return string(hashMark) + hex.EncodeToString(sum[:])
}

func isDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
