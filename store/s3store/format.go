package s3store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/cachier-go/cachier/store"
)

// ErrCorrupt is store.ErrCorrupt. It reports a stored object that this package cannot
// read: truncated, garbled or written by something else. Errors that carry it also match
// store.ErrNotFound, so callers treat the entry as missing (and recompute it) instead of
// trusting its bytes.
var ErrCorrupt = store.ErrCorrupt

// corrupt returns an error matching both store.ErrNotFound and ErrCorrupt.
func corrupt(name, why string) error {
	return fmt.Errorf("s3store: %q: %w: %w: %s", name, ErrCorrupt, store.ErrNotFound, why)
}

// An entry object is a fixed header followed by the value:
//
//	0  4  magic "cS3E"
//	4  1  format version (1)
//	5  3  zero
//	8  8  StoredAt, Unix seconds (signed), big endian
//	16 4  StoredAt, nanoseconds within the second
//	20 4  CRC-32C of the value
//	24 8  length of the value, big endian
//	32 4  CRC-32C of bytes 0..31
//
// An entry with ExpiresAt has format version 2 and a 44-byte header: the same first 32
// bytes, then ExpiresAt in Unix nanoseconds (8 bytes, big endian), then the CRC-32C of
// bytes 0..39. An entry without one keeps version 1, byte for byte.
//
// The header carries StoredAt so that Get is one GetObject, and the lengths and checksums
// so that a truncated or overwritten object is reported as corrupt, never returned.
const (
	entryMagic    = "cS3E"
	entryVersion  = 1
	headerLen     = 36
	entryVersion2 = 2       // with ExpiresAt
	headerLen2    = 44      // the longest header; listing reads this much
	maxObjectSize = 5 << 30 // S3's limit for one PutObject
	// MaxValueSize is the largest value Set accepts; larger values get store.ErrTooLarge.
	MaxValueSize = maxObjectSize - headerLen
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeEntry returns the object body for e.
func encodeEntry(e store.Entry) []byte {
	hl := headerLen
	if !e.ExpiresAt.IsZero() {
		hl = headerLen2
	}
	b := make([]byte, hl+len(e.Value))
	copy(b, entryMagic)
	b[4] = entryVersion
	binary.BigEndian.PutUint64(b[8:], uint64(e.StoredAt.Unix()))
	binary.BigEndian.PutUint32(b[16:], uint32(e.StoredAt.Nanosecond()))
	binary.BigEndian.PutUint32(b[20:], crc32.Checksum(e.Value, castagnoli))
	binary.BigEndian.PutUint64(b[24:], uint64(len(e.Value)))
	if hl == headerLen2 {
		b[4] = entryVersion2
		binary.BigEndian.PutUint64(b[32:], uint64(e.ExpiresAt.UnixNano()))
	}
	binary.BigEndian.PutUint32(b[hl-4:], crc32.Checksum(b[:hl-4], castagnoli))
	copy(b[hl:], e.Value)
	return b
}

// header is the decoded fixed header of an entry object.
type header struct {
	storedAt  time.Time
	expiresAt time.Time // zero: never
	size      int64
	crc       uint32
	len       int64 // bytes of header before the value
}

// decodeHeader checks and decodes the first headerLen bytes of an entry object.
func decodeHeader(b []byte) (header, string) {
	if len(b) < headerLen {
		return header{}, fmt.Sprintf("%d bytes, shorter than the %d-byte header", len(b), headerLen)
	}
	if string(b[:4]) != entryMagic {
		return header{}, "bad magic"
	}
	hl := headerLen
	switch b[4] {
	case entryVersion:
	case entryVersion2:
		hl = headerLen2
		if len(b) < hl {
			return header{}, fmt.Sprintf("%d bytes, shorter than the %d-byte header", len(b), hl)
		}
	default:
		return header{}, fmt.Sprintf("unknown format version %d", b[4])
	}
	if crc32.Checksum(b[:hl-4], castagnoli) != binary.BigEndian.Uint32(b[hl-4:]) {
		return header{}, "header checksum mismatch"
	}
	var exp time.Time
	if hl == headerLen2 {
		ns := int64(binary.BigEndian.Uint64(b[32:]))
		if ns == 0 {
			return header{}, "zero expiry in a version 2 header"
		}
		exp = time.Unix(0, ns)
	}
	nsec := binary.BigEndian.Uint32(b[16:])
	size := binary.BigEndian.Uint64(b[24:])
	if nsec >= 1e9 || b[5]|b[6]|b[7] != 0 {
		return header{}, "garbled header"
	}
	if size > math.MaxInt64-headerLen {
		return header{}, "impossible length"
	}
	return header{
		storedAt:  time.Unix(int64(binary.BigEndian.Uint64(b[8:])), int64(nsec)),
		expiresAt: exp,
		size:      int64(size),
		crc:       binary.BigEndian.Uint32(b[20:]),
		len:       int64(hl),
	}, ""
}

// decodeEntry checks and decodes a whole entry object. The value aliases b.
func decodeEntry(b []byte) (store.Entry, string) {
	h, why := decodeHeader(b)
	if why != "" {
		return store.Entry{}, why
	}
	v := b[h.len:]
	if int64(len(v)) != h.size {
		return store.Entry{}, fmt.Sprintf("value of %d bytes, header says %d", len(v), h.size)
	}
	if crc32.Checksum(v, castagnoli) != h.crc {
		return store.Entry{}, "value checksum mismatch"
	}
	return store.Entry{Value: v, StoredAt: h.storedAt, ExpiresAt: h.expiresAt}, ""
}
