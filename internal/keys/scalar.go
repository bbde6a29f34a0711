package keys

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"reflect"
)

// Scalar says how a type's values are digested without the CBOR encoder: the
// encoding of a bool, an integer or a string is a few bytes written here, the same
// bytes (tested against the encoder), so the digest, and every key made of it, is the
// same.
type Scalar uint8

// The scalars.
const (
	NotScalar Scalar = iota
	Bool
	Int
	Uint
	String
)

// ScalarOf returns how values of t are digested by DigestInt and the others, or
// NotScalar if t is not a bool, integer or string kind or says how it encodes
// itself (a marshaler).
func ScalarOf(t reflect.Type) Scalar {
	if hasMarshaler(t) {
		return NotScalar
	}
	switch t.Kind() {
	case reflect.Bool:
		return Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return Int
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return Uint
	case reflect.String:
		return String
	}
	return NotScalar
}

// head appends a CBOR head of major type major and argument n, in its shortest form.
func head(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

func hexDigest(b []byte) string {
	sum := sha256.Sum256(b)
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:])
}

// DigestInt is Digest of a signed integer n.
func DigestInt(n int64) string {
	var buf [9]byte
	if n >= 0 {
		return hexDigest(head(buf[:0], 0, uint64(n)))
	}
	return hexDigest(head(buf[:0], 1, uint64(-1-n)))
}

// DigestUint is Digest of an unsigned integer n.
func DigestUint(n uint64) string {
	var buf [9]byte
	return hexDigest(head(buf[:0], 0, n))
}

// DigestBool is Digest of a bool.
func DigestBool(v bool) string {
	if v {
		return hexDigest([]byte{0xf5})
	}
	return hexDigest([]byte{0xf4})
}

// DigestString is Digest of a string.
func DigestString(s string) string {
	var buf [128]byte
	b := head(buf[:0], 3, uint64(len(s)))
	if len(b)+len(s) <= len(buf) {
		return hexDigest(append(b, s...))
	}
	h := sha256.New()
	h.Write(b)
	h.Write([]byte(s))
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], h.Sum(sum[:0]))
	return string(out[:])
}
