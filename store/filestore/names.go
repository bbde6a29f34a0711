package filestore

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unsafe"

	"github.com/cachier-go/cachier/store"
)

// On-disk layout, under the root directory:
//
//	<root>/<namespace dir>/<fan-out>/<entry>          an entry
//	<root>/<namespace dir>/<fan-out>/.lock            flock'd while Swap changes a record
//	<root>/<namespace dir>/<fan-out>/.tmp-*           a file being written
//	<root>/<namespace dir>/.namespace                 the namespace, when the dir name is hashed
//
// <entry> is the first 128 bits of SHA-256(ID) in lowercase hex (32 characters) and
// <fan-out> is its first two characters, so 256 directories share a namespace's
// entries. Every internal name starts with a dot and no entry name or namespace
// directory name does, so no key can name an internal file, and no key can reach
// outside its directory: IDs only ever appear hashed.
const (
	entryNameLen = 32
	lockName     = ".lock"
	tmpPrefix    = ".tmp-"
	metaName     = ".namespace"
)

// entryName returns the file name of the entry with this ID.
func entryName(id string) string {
	var name [entryNameLen]byte
	hexName(&name, id)
	return string(name[:])
}

// hexName writes the file name of the entry with this ID into name. It hashes the
// ID's bytes in place: converting the string to a []byte for sha256 copied it to the
// heap, on every path a miss resolves.
func hexName(name *[entryNameLen]byte, id string) {
	h := sha256.Sum256(unsafe.Slice(unsafe.StringData(id), len(id)))
	hex.Encode(name[:], h[:entryNameLen/2])
}

// isHex reports whether s is non-empty lowercase hex.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// isEntryName reports whether a file name in a fan-out directory is an entry.
func isEntryName(s string) bool { return len(s) == entryNameLen && isHex(s) }

// isFanoutName reports whether a directory name in a namespace directory is a fan-out.
func isFanoutName(s string) bool { return len(s) == 2 && isHex(s) }

// Namespace directory names keep the namespace readable: bytes in [A-Za-z0-9._-] stay
// as they are (except a leading '.', which would hide the directory and could form "."
// or ".."), and every other byte becomes %XX. Two things force a hash suffix
// "~<32 hex digits of SHA-256(namespace)>": an upper-case letter, because on a
// case-insensitive file system (macOS, Windows) "pkg.Foo" and "pkg.foo" would share a
// directory and so could return each other's values; and a name longer than
// maxReadableLen, to stay well inside the 255-byte limit on a file name. '~' never
// appears in an escaped name, so hashed names cannot collide with plain ones. A hashed
// directory keeps the original namespace in its .namespace file for Namespaces.
const maxReadableLen = 96

// nsDirName returns the directory name for a namespace, and whether it is hashed.
func nsDirName(ns string) (name string, hashed bool) {
	hashed = strings.IndexFunc(ns, func(r rune) bool { return 'A' <= r && r <= 'Z' }) >= 0
	name = string(store.AppendEscaped(make([]byte, 0, len(ns)), ns, store.NameByte))
	if len(name) > maxReadableLen {
		hashed = true
		name = name[:maxReadableLen]
		// Do not leave half of a %XX escape at the end.
		if i := strings.LastIndexByte(name, '%'); i >= len(name)-2 {
			name = name[:i]
		}
	}
	if hashed {
		h := sha256.Sum256([]byte(ns))
		name += "~" + hex.EncodeToString(h[:16])
	}
	return name, hashed
}

// decodeNSDirName is the inverse of nsDirName for names that are not hashed. It
// reports false for anything nsDirName would not have produced.
func decodeNSDirName(name string) (string, bool) {
	if strings.ContainsRune(name, '~') {
		return "", false
	}
	ns, ok := store.Unescape(name)
	if !ok {
		return "", false
	}
	if again, hashed := nsDirName(ns); hashed || again != name {
		return "", false
	}
	return ns, true
}
