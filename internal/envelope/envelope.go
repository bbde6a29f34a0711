// Package envelope frames an encoded value for storage: a magic byte, a format
// version, the codec that encoded the payload, flags, optional metadata (a per-entry
// stale limit, the version counters the entry depends on), the payload, and a CRC-32C
// of everything before it. Every store keeps the framed bytes opaque, so one checksum
// here protects values on every engine: truncated, flipped or foreign bytes fail to
// open and become a miss, never a wrong value.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

const (
	magic   = 0xCA
	version = 1
	// Overhead is the number of bytes Seal adds to a payload without metadata.
	Overhead = 4 + 4
	// MaxDeps bounds the dependencies an entry may carry, so a hostile frame cannot
	// make Open allocate much.
	MaxDeps = 1024
	// maxDepName bounds one dependency's name.
	maxDepName = 1024
)

// Flags describe the payload.
type Flags uint8

const (
	// Nil marks a nil result (cached only with AllowNil); the payload is empty.
	Nil Flags = 1 << iota
	// hasTTL marks a per-entry stale limit after the header.
	hasTTL
	// hasDeps marks a list of dependencies after the header (and the TTL).
	hasDeps
	// Missing marks a "not found" record: the function was asked for the argument
	// and returned no result for it (a batch's CacheMissing); the payload is empty.
	Missing
	// Failed marks an error the function returned, remembered on purpose
	// (cachier.CacheErrors, CacheNotFound); the payload is the error record, which
	// package cachier encodes and decodes. It is never a value.
	Failed

	knownFlags = Nil | hasTTL | hasDeps | Missing | Failed
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

// Dep is a version counter an entry depends on, with the value it had when the entry
// was stored. The entry is valid while every counter still has that value.
type Dep struct {
	Name    string
	Version uint64
}

// Meta is what a frame says about its payload besides the codec.
type Meta struct {
	Flags Flags
	// TTL is a stale limit for this entry alone (easy_cache's dynamic timeout);
	// zero means the function's.
	TTL  time.Duration
	Deps []Dep
}

// ErrCorrupt reports bytes that are not a sealed envelope.
var ErrCorrupt = errors.New("envelope: corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Seal frames payload. The result is a new slice.
func Seal(c Codec, m Meta, payload []byte) []byte {
	f := m.Flags &^ (hasTTL | hasDeps)
	if m.TTL > 0 {
		f |= hasTTL
	}
	if len(m.Deps) > 0 {
		f |= hasDeps
	}
	b := make([]byte, 0, len(payload)+Overhead+metaSize(m))
	b = append(b, magic, version, byte(c), byte(f))
	if f&hasTTL != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(m.TTL))
	}
	if f&hasDeps != 0 {
		b = binary.AppendUvarint(b, uint64(len(m.Deps)))
		for _, d := range m.Deps {
			b = binary.AppendUvarint(b, uint64(len(d.Name)))
			b = append(b, d.Name...)
			b = binary.BigEndian.AppendUint64(b, d.Version)
		}
	}
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func metaSize(m Meta) int {
	n := 8
	for _, d := range m.Deps {
		n += len(d.Name) + 8 + 2*binary.MaxVarintLen16
	}
	return n
}

// Open checks a framed value and returns its codec, metadata and payload. The
// payload aliases b. Any error matches ErrCorrupt.
func Open(b []byte) (Codec, Meta, []byte, error) {
	return OpenReuse(b, nil, "")
}

// OpenReuse is Open for a caller that opens many frames at once (a batch of 100 hits):
// the dependencies go into deps when they fit its capacity (one allocation for the
// batch rather than one per frame), and a dependency named known gets that very
// string rather than a copy of its name (a namespace's own invalidation epoch, which
// nearly every entry carries).
func OpenReuse(b []byte, deps []Dep, known string) (Codec, Meta, []byte, error) {
	var m Meta
	if len(b) < Overhead {
		return 0, m, nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte frame", ErrCorrupt, len(b), Overhead)
	}
	if b[0] != magic {
		return 0, m, nil, fmt.Errorf("%w: bad magic byte %#x", ErrCorrupt, b[0])
	}
	if b[1] != version {
		return 0, m, nil, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, b[1])
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, m, nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	m, rest, err := parseMetaReuse(body, deps, known)
	if err != nil {
		return 0, m, nil, err
	}
	return Codec(b[2]), m, rest, nil
}

// Peek reads the metadata of a frame without checking its checksum, for bytes that
// never left the process (memstore's shared values). Any error matches ErrCorrupt.
func Peek(b []byte) (Meta, error) {
	if len(b) < Overhead || b[0] != magic || b[1] != version {
		return Meta{}, fmt.Errorf("%w: not a frame", ErrCorrupt)
	}
	m, _, err := parseMeta(b[:len(b)-4])
	return m, err
}

// parseMeta reads the flags and metadata of a frame's body (without its checksum)
// and returns the payload after them.
func parseMeta(body []byte) (Meta, []byte, error) {
	return parseMetaReuse(body, nil, "")
}

// parseMetaReuse is parseMeta appending the dependencies to deps[:0] when they fit,
// and naming a dependency known with that string (see OpenReuse).
func parseMetaReuse(body []byte, deps []Dep, known string) (Meta, []byte, error) {
	var m Meta
	m.Flags = Flags(body[3])
	if m.Flags&^knownFlags != 0 {
		return m, nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, body[3])
	}
	rest := body[4:]
	if m.Flags&hasTTL != 0 {
		if len(rest) < 8 {
			return m, nil, fmt.Errorf("%w: truncated TTL", ErrCorrupt)
		}
		m.TTL = time.Duration(binary.BigEndian.Uint64(rest))
		rest = rest[8:]
		if m.TTL <= 0 {
			return m, nil, fmt.Errorf("%w: TTL %v is not positive", ErrCorrupt, m.TTL)
		}
	}
	if m.Flags&hasDeps != 0 {
		n, k := binary.Uvarint(rest)
		// Each dependency takes at least 9 bytes (a length and a version), so a
		// count the bytes cannot hold is refused before anything is allocated.
		if k <= 0 || n == 0 || n > MaxDeps || n > uint64(len(rest)-k)/9 {
			return m, nil, fmt.Errorf("%w: bad dependency count", ErrCorrupt)
		}
		rest = rest[k:]
		if uint64(cap(deps)) >= n {
			m.Deps = deps[:0]
		} else {
			m.Deps = make([]Dep, 0, n)
		}
		for range n {
			l, k := binary.Uvarint(rest)
			if k <= 0 || l > maxDepName || uint64(len(rest)-k) < l+8 {
				return m, nil, fmt.Errorf("%w: truncated dependency", ErrCorrupt)
			}
			rest = rest[k:]
			var name string
			if string(rest[:l]) == known { // compared without a copy
				name = known
			} else {
				name = string(rest[:l])
			}
			rest = rest[l:]
			m.Deps = append(m.Deps, Dep{Name: name, Version: binary.BigEndian.Uint64(rest)})
			rest = rest[8:]
		}
	}
	m.Flags &^= hasTTL | hasDeps
	return m, rest, nil
}
