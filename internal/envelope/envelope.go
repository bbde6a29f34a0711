// Package envelope frames an encoded value for storage: a magic byte, a format
// version, the codec that encoded the payload, flags, the payload and a CRC-32C of
// everything before it. Every store keeps the framed bytes opaque, so one checksum
// here protects values on every engine: truncated, flipped or foreign bytes fail to
// open and become a miss, never a wrong value.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	magic   = 0xCA
	version = 1
	// Overhead is the number of bytes Seal adds to a payload.
	Overhead = 4 + 4
)

// Flags describe the payload.
type Flags uint8

const (
	// Nil marks a nil result (cached only with AllowNil); the payload is empty.
	Nil Flags = 1 << iota
)

// Codec identifies how the payload was encoded.
type Codec uint8

// Codec identifiers. A value written with one codec is a miss for a function that now
// uses another, so changing codecs needs no migration.
const (
	Raw    Codec = 0 // []byte or string, unencoded
	CBOR   Codec = 1
	JSON   Codec = 2
	Gob    Codec = 3
	Custom Codec = 255
)

// ErrCorrupt reports bytes that are not a sealed envelope.
var ErrCorrupt = errors.New("envelope: corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Seal frames payload. The result is a new slice.
func Seal(c Codec, f Flags, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+Overhead)
	b = append(b, magic, version, byte(c), byte(f))
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// Open checks a framed value and returns its codec, flags and payload. The payload
// aliases b. Any error matches ErrCorrupt.
func Open(b []byte) (Codec, Flags, []byte, error) {
	if len(b) < Overhead {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte frame", ErrCorrupt, len(b), Overhead)
	}
	if b[0] != magic {
		return 0, 0, nil, fmt.Errorf("%w: bad magic byte %#x", ErrCorrupt, b[0])
	}
	if b[1] != version {
		return 0, 0, nil, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, b[1])
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, 0, nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	f := Flags(b[3])
	if f&^Nil != 0 {
		return 0, 0, nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, b[3])
	}
	return Codec(b[2]), f, body[4:], nil
}
