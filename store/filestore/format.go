package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/cachier-go/cachier/store"
)

// Every file the store writes is one entry record (package store keeps its lease and
// counter records as entries):
//
//	offset size  field
//	0      4     magic: "CGFE" ("CGFL" was a lease, before package store kept them)
//	4      1     format version (1)
//	5      1     flags: 1 = an expiry follows the header (entries with ExpiresAt)
//	6      2     reserved, zero
//	8      8     StoredAt, seconds since the Unix epoch (int64, big endian)
//	16     4     time, nanoseconds within the second (uint32, < 1e9)
//	20     4     length of the key's ID in bytes (uint32)
//	24     8     length of the payload in bytes (uint64)
//	32     4     CRC-32C (Castagnoli) of bytes 0..32 followed by everything after 36
//	36     8     with flag 1 only: ExpiresAt, nanoseconds since the Unix epoch (int64,
//	             big endian)
//	36/44  -     the ID, then the payload
//
// The length fields must account for the whole file exactly, so a truncated or
// extended file is rejected before the checksum is even computed. The time lives in the
// header so that DeleteBefore and Entries can read 36 bytes (plus the ID) instead of
// the value. Seconds and nanoseconds are stored apart so that any time.Time, including
// the zero one, round-trips exactly.
const (
	headerSize    = 36
	formatVersion = 1
)

var (
	magicEntry = [4]byte{'C', 'G', 'F', 'E'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// MaxValueSize is the largest value Set accepts; larger ones fail with an error matching
// store.ErrTooLarge. The bound also lets Get refuse to allocate for an absurd file.
const MaxValueSize = 1 << 30

// maxRecordSize bounds the size of any file the store will read whole.
const maxRecordSize = headerSize + store.MaxIDLen + MaxValueSize

// errFormat is the cause inside every decoding error; callers wrap it into ErrCorrupt.
var errFormat = errors.New("bad record")

// header is the fixed part of a record.
type header struct {
	t          time.Time
	exp        time.Time // ExpiresAt, or zero
	ext        uint32    // bytes between the header and the ID: 8 with an expiry
	idLen      uint32
	payloadLen uint64
	crc        uint32
}

// Header flags (byte 5).
const (
	flagExpiry = 1 // an 8-byte ExpiresAt follows the header
	extExpiry  = 8
)

// size is the length of the whole record the header describes.
func (h header) size() uint64 { return headerSize + uint64(h.ext) + uint64(h.idLen) + h.payloadLen }

// idStart is the offset of the ID in the record.
func (h header) idStart() int { return headerSize + int(h.ext) }

// encodeRecord returns the record of an entry stored at t, expiring at exp (never when
// exp is zero). It never fails: callers bound id and payload.
func encodeRecord(t, exp time.Time, id string, payload []byte) []byte {
	ext := 0
	if !exp.IsZero() {
		ext = extExpiry
	}
	buf := make([]byte, headerSize+ext+len(id)+len(payload))
	copy(buf[0:4], magicEntry[:])
	buf[4] = formatVersion
	binary.BigEndian.PutUint64(buf[8:16], uint64(t.Unix()))
	binary.BigEndian.PutUint32(buf[16:20], uint32(t.Nanosecond()))
	binary.BigEndian.PutUint32(buf[20:24], uint32(len(id)))
	binary.BigEndian.PutUint64(buf[24:32], uint64(len(payload)))
	if ext > 0 {
		buf[5] = flagExpiry
		binary.BigEndian.PutUint64(buf[headerSize:], uint64(exp.UnixNano()))
	}
	copy(buf[headerSize+ext:], id)
	copy(buf[headerSize+ext+len(id):], payload)
	binary.BigEndian.PutUint32(buf[32:36], checksum(buf))
	return buf
}

// checksum is the CRC-32C of a record with its checksum field left out.
func checksum(rec []byte) uint32 {
	c := crc32.Update(0, castagnoli, rec[:32])
	return crc32.Update(c, castagnoli, rec[headerSize:])
}

// decodeHeader parses and checks the fixed part of a record: magic, version, reserved
// bytes, time and lengths. It does not check the checksum, which covers the rest.
func decodeHeader(b []byte) (header, error) {
	var h header
	if len(b) < headerSize {
		return h, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", errFormat, len(b), headerSize)
	}
	if [4]byte(b[0:4]) != magicEntry {
		return h, fmt.Errorf("%w: magic %q, want %q", errFormat, b[0:4], magicEntry[:])
	}
	if b[4] != formatVersion {
		return h, fmt.Errorf("%w: format version %d, want %d", errFormat, b[4], formatVersion)
	}
	if b[5]&^flagExpiry != 0 || b[6]|b[7] != 0 {
		return h, fmt.Errorf("%w: reserved header bytes are not zero", errFormat)
	}
	sec := int64(binary.BigEndian.Uint64(b[8:16]))
	nsec := binary.BigEndian.Uint32(b[16:20])
	if nsec >= 1e9 {
		return h, fmt.Errorf("%w: %d nanoseconds", errFormat, nsec)
	}
	h.t = time.Unix(sec, int64(nsec))
	h.idLen = binary.BigEndian.Uint32(b[20:24])
	h.payloadLen = binary.BigEndian.Uint64(b[24:32])
	h.crc = binary.BigEndian.Uint32(b[32:36])
	if b[5]&flagExpiry != 0 {
		if len(b) < headerSize+extExpiry {
			return h, fmt.Errorf("%w: %d bytes is shorter than the header and its expiry", errFormat, len(b))
		}
		ns := int64(binary.BigEndian.Uint64(b[headerSize:]))
		if ns == 0 {
			return h, fmt.Errorf("%w: zero expiry under the expiry flag", errFormat)
		}
		h.exp, h.ext = time.Unix(0, ns), extExpiry
	}
	if h.idLen == 0 || h.idLen > store.MaxIDLen {
		return h, fmt.Errorf("%w: id length %d", errFormat, h.idLen)
	}
	if h.payloadLen > math.MaxInt64-headerSize-store.MaxIDLen || h.size() > maxRecordSize {
		return h, fmt.Errorf("%w: payload length %d", errFormat, h.payloadLen)
	}
	return h, nil
}

// decodeEntry decodes an entry file. It is pure and total: any input either decodes
// to exactly what encodeRecord was given or fails with an error wrapping errFormat.
// The returned value aliases rec.
func decodeEntry(rec []byte) (id string, e store.Entry, err error) {
	h, err := decodeHeader(rec)
	switch {
	case err != nil:
		return "", e, err
	case uint64(len(rec)) != h.size():
		return "", e, fmt.Errorf("%w: %d bytes, header says %d", errFormat, len(rec), h.size())
	case checksum(rec) != h.crc:
		return "", e, fmt.Errorf("%w: checksum %08x, header says %08x", errFormat, checksum(rec), h.crc)
	}
	idEnd := h.idStart() + int(h.idLen)
	return string(rec[h.idStart():idEnd]), store.Entry{Value: rec[idEnd:], StoredAt: h.t, ExpiresAt: h.exp}, nil
}
