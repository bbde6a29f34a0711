package memcachestore

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"time"
)

// Record layouts. Integers are big-endian; the CRC-32C covers every byte of the record
// except the checksum field itself.
//
//	entry: "cmE1" gen:u64 storedAt:i64 nsLen:u16 idLen:u16 crc:u32 ns id value
//	entry with ExpiresAt:
//	       "cmE2" gen:u64 storedAt:i64 expiresAt:i64 nsLen:u16 idLen:u16 crc:u32 ns id value
const (
	entryMagic  = "cmE1"
	entryMagic2 = "cmE2" // with ExpiresAt
	entryHeader = 4 + 8 + 8 + 2 + 2 + 4
	// zeroTime encodes the zero time.Time, which has no UnixNano.
	zeroTime = math.MinInt64
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errShort and friends describe why a record did not decode; they are wrapped with
// ErrCorrupt by the caller.
var (
	errShort    = errors.New("record too short")
	errMagic    = errors.New("record has a foreign format")
	errChecksum = errors.New("record checksum mismatch")
	errLength   = errors.New("record lengths do not add up")
)

func encodeTime(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

func decodeTime(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// entryRecord is a decoded entry. Value aliases the record bytes.
type entryRecord struct {
	gen       uint64
	storedAt  time.Time
	expiresAt time.Time
	ns, id    string
	value     []byte
}

func entrySize(ns, id string, value []byte) int {
	return entryHeader + len(ns) + len(id) + len(value)
}

func appendEntry(dst []byte, gen uint64, storedAt time.Time, ns, id string, value []byte) []byte {
	return appendEntryExp(dst, gen, storedAt, time.Time{}, ns, id, value)
}

// appendEntryExp is appendEntry with an expiry ("cmE2"), or without one ("cmE1", the
// same bytes as before expiries existed) when expiresAt is zero.
func appendEntryExp(dst []byte, gen uint64, storedAt, expiresAt time.Time, ns, id string, value []byte) []byte {
	start := len(dst)
	if expiresAt.IsZero() {
		dst = append(dst, entryMagic...)
	} else {
		dst = append(dst, entryMagic2...)
	}
	dst = binary.BigEndian.AppendUint64(dst, gen)
	dst = binary.BigEndian.AppendUint64(dst, uint64(encodeTime(storedAt)))
	if !expiresAt.IsZero() {
		dst = binary.BigEndian.AppendUint64(dst, uint64(encodeTime(expiresAt)))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(ns)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(id)))
	crcAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, ns...)
	dst = append(dst, id...)
	dst = append(dst, value...)
	binary.BigEndian.PutUint32(dst[crcAt:], checksum(dst[start:], crcAt-start))
	return dst
}

// checksum is the CRC-32C of rec without the four bytes at crcAt.
func checksum(rec []byte, crcAt int) uint32 {
	c := crc32.Update(0, castagnoli, rec[:crcAt])
	return crc32.Update(c, castagnoli, rec[crcAt+4:])
}

func decodeEntry(b []byte) (entryRecord, error) {
	var r entryRecord
	if len(b) < entryHeader {
		return r, errShort
	}
	ext := 0 // the expiry field of "cmE2"
	switch string(b[:4]) {
	case entryMagic:
	case entryMagic2:
		ext = 8
		if len(b) < entryHeader+ext {
			return r, errShort
		}
	default:
		return r, errMagic
	}
	crcAt := entryHeader + ext - 4
	if binary.BigEndian.Uint32(b[crcAt:]) != checksum(b, crcAt) {
		return r, errChecksum
	}
	r.gen = binary.BigEndian.Uint64(b[4:])
	r.storedAt = decodeTime(int64(binary.BigEndian.Uint64(b[12:])))
	if ext > 0 {
		if r.expiresAt = decodeTime(int64(binary.BigEndian.Uint64(b[20:]))); r.expiresAt.IsZero() {
			return r, errLength
		}
	}
	nsLen := int(binary.BigEndian.Uint16(b[20+ext:]))
	idLen := int(binary.BigEndian.Uint16(b[22+ext:]))
	rest := b[entryHeader+ext:]
	if nsLen+idLen > len(rest) {
		return r, errLength
	}
	r.ns = string(rest[:nsLen])
	r.id = string(rest[nsLen : nsLen+idLen])
	r.value = rest[nsLen+idLen:]
	return r, nil
}
