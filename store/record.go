package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// InternalPrefix starts the namespaces in which the portable layer keeps its own
// records through a driver: the lease of key {ns, id} is the record {InternalPrefix+ns,
// id}, and counter c is the record {InternalPrefix, c}. [Key.Validate] refuses user
// namespaces that start with it, so these records never collide with entries.
const InternalPrefix = "\x01"

// leaseKey returns the record that holds the lease of k.
func leaseKey(k Key) Key { return Key{Namespace: InternalPrefix + k.Namespace, ID: k.ID} }

// leaseKeys makes the lease records of many keys, as leaseKey does: the namespace of
// their records is made once for each run of keys of one namespace, where leaseKey
// made it once per key (a batch's 100 keys made 100 equal strings).
type leaseKeys struct{ ns, internal string }

// key returns the record that holds the lease of k.
func (c *leaseKeys) key(k Key) Key {
	if c.internal == "" || k.Namespace != c.ns {
		c.ns, c.internal = k.Namespace, InternalPrefix+k.Namespace
	}
	return Key{Namespace: c.internal, ID: k.ID}
}

// leaseCodec encodes many leases, as encodeLease does: a lease of the owner and
// expiry of the one before gets the same bytes, since the record does not name its
// key (the leases of a batch are one owner's, taken at one time). The bytes are
// shared: nobody may write them.
type leaseCodec struct {
	last Lease
	b    []byte
}

// encode returns l's record.
func (c *leaseCodec) encode(l Lease) []byte {
	if c.b == nil || l.Owner != c.last.Owner || l.ExpiresAt.UnixNano() != c.last.ExpiresAt.UnixNano() {
		c.last, c.b = l, encodeLease(l)
	}
	return c.b
}

// counterKey returns the record that holds counter name.
func counterKey(name string) Key { return Key{Namespace: InternalPrefix, ID: name} }

// counterKeys returns the records that hold the counters names.
func counterKeys(names []string) []Key {
	ks := make([]Key, len(names))
	for i, n := range names {
		ks[i] = counterKey(n)
	}
	return ks
}

// The one record layout for leases, the same on every engine:
//
//	"cL1" | uvarint len(host) | host | uvarint pid | uvarint len(token) | token |
//	expiry in Unix nanoseconds, 8 bytes little-endian
//
// Records are compared byte for byte by Swap, and every acquisition writes a new
// token or a new expiry, so two different leases never have the same bytes.
const leaseMagic = "cL1"

// errBadRecord reports a lease or counter record that cannot be decoded.
var errBadRecord = errors.New("malformed record")

func encodeLease(l Lease) []byte {
	b := make([]byte, 0, len(leaseMagic)+len(l.Owner.Host)+len(l.Owner.Token)+3*binary.MaxVarintLen64+8)
	b = append(b, leaseMagic...)
	b = binary.AppendUvarint(b, uint64(len(l.Owner.Host)))
	b = append(b, l.Owner.Host...)
	b = binary.AppendUvarint(b, uint64(max(l.Owner.PID, 0)))
	b = binary.AppendUvarint(b, uint64(len(l.Owner.Token)))
	b = append(b, l.Owner.Token...)
	return binary.LittleEndian.AppendUint64(b, uint64(l.ExpiresAt.UnixNano()))
}

// decodeLease parses a lease record of key k. It never panics, whatever b holds.
func decodeLease(k Key, b []byte) (Lease, error) {
	bad := func(what string) (Lease, error) {
		return Lease{}, fmt.Errorf("%w: lease of %s: %s", errBadRecord, k, what)
	}
	if len(b) < len(leaseMagic) || string(b[:len(leaseMagic)]) != leaseMagic {
		return bad("no lease header")
	}
	b = b[len(leaseMagic):]
	str := func() (string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", false
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, utf8.ValidString(s)
	}
	host, ok := str()
	if !ok {
		return bad("bad host")
	}
	pid, w := binary.Uvarint(b)
	if w <= 0 || pid > 1<<31 {
		return bad("bad pid")
	}
	b = b[w:]
	token, ok := str()
	if !ok || token == "" {
		return bad("bad token")
	}
	if len(b) != 8 {
		return bad("bad expiry")
	}
	exp := time.Unix(0, int64(binary.LittleEndian.Uint64(b)))
	return Lease{Key: k, Owner: Owner{Host: host, PID: int(pid), Token: token}, ExpiresAt: exp}, nil
}

// Counters are 8 bytes, little-endian.
func encodeCounter(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func decodeCounter(name string, b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: %w: counter %q holds %d bytes, want 8", ErrCorrupt, errBadRecord, name, len(b))
	}
	return binary.LittleEndian.Uint64(b), nil
}

// The one layout of an entry record, for drivers that keep an entry as one blob (an
// S3 object, a memcached item):
//
//	"cE1" | flags | StoredAt | [ExpiresAt] | uvarint len(tag) | tag | value
//
// flags bit 0 says ExpiresAt follows StoredAt; no other bit may be set. A time is Unix
// seconds (8 bytes) then nanoseconds within the second (4 bytes), little-endian, so
// that every time.Time, the zero one too, survives. The tag
// is the driver's own (memcached keeps the namespace generation and the key there),
// and may be empty. There is no checksum: the value is a sealed envelope whose
// CRC-32C covers it (package internal/envelope), and lease and counter records are
// checked field by field when decoded. A header damaged past these checks gives at
// worst a wrong StoredAt.
const (
	recordMagic = "cE1"
	recordExp   = 1 << 0
	// MaxRecordHeader is the longest record header with an empty tag: a driver
	// that lists entries by reading headers alone reads this many bytes.
	MaxRecordHeader = 3 + 1 + timeLen + timeLen + 1 // magic, flags, StoredAt, ExpiresAt, tag length
	timeLen         = 8 + 4
)

// RecordHeader is the decoded header of an entry record.
type RecordHeader struct {
	StoredAt, ExpiresAt time.Time
	Tag                 []byte // aliases the record
	Len                 int    // bytes before the value
}

// RecordSize returns the length of the record of a value of n bytes with that tag.
func RecordSize(n int, tag []byte, expires bool) int {
	h := MaxRecordHeader - 1 + varintLen(len(tag)) + len(tag) + n
	if !expires {
		h -= timeLen
	}
	return h
}

func varintLen(n int) int { return len(binary.AppendUvarint(nil, uint64(n))) }

// AppendRecord appends the record of e, with the driver's tag, to dst.
func AppendRecord(dst []byte, e Entry, tag []byte) []byte {
	dst = append(dst, recordMagic...)
	var flags byte
	if !e.ExpiresAt.IsZero() {
		flags |= recordExp
	}
	dst = appendTime(append(dst, flags), e.StoredAt)
	if flags&recordExp != 0 {
		dst = appendTime(dst, e.ExpiresAt)
	}
	dst = binary.AppendUvarint(dst, uint64(len(tag)))
	dst = append(dst, tag...)
	return append(dst, e.Value...)
}

// DecodeRecordHeader decodes the header at the start of b, which may hold the whole
// record or only its first bytes. Its errors match ErrCorrupt and say what is wrong.
// A record of the layouts drivers wrote before this one (with a checksum of their
// own) is such an error: read as a miss, and replaced by the next write.
func DecodeRecordHeader(b []byte) (RecordHeader, error) {
	var h RecordHeader
	bad := func(what string) (RecordHeader, error) {
		return RecordHeader{}, fmt.Errorf("%w: entry record: %s", ErrCorrupt, what)
	}
	p := len(recordMagic) + 1
	if len(b) < p+timeLen+1 || string(b[:len(recordMagic)]) != recordMagic {
		return bad("no entry record header")
	}
	flags := b[p-1]
	if flags&^recordExp != 0 {
		return bad("unknown flags")
	}
	var ok bool
	if h.StoredAt, ok = decodeTime(b[p:]); !ok {
		return bad("bad StoredAt")
	}
	p += timeLen
	if flags&recordExp != 0 {
		if len(b) < p+timeLen+1 {
			return bad("short header")
		}
		if h.ExpiresAt, ok = decodeTime(b[p:]); !ok || h.ExpiresAt.IsZero() {
			return bad("bad expiry")
		}
		p += timeLen
	}
	n, w := binary.Uvarint(b[p:])
	if w <= 0 || n > uint64(len(b)-p-w) || w != varintLen(int(n)) {
		return bad("bad tag length")
	}
	p += w
	h.Tag, h.Len = b[p:p+int(n):p+int(n)], p+int(n)
	return h, nil
}

// DecodeRecord decodes a whole entry record. The entry's value and the tag alias b.
func DecodeRecord(b []byte) (Entry, []byte, error) {
	h, err := DecodeRecordHeader(b)
	if err != nil {
		return Entry{}, nil, err
	}
	return Entry{Value: b[h.Len:], StoredAt: h.StoredAt, ExpiresAt: h.ExpiresAt}, h.Tag, nil
}

// Bounds of the times [UnixNano] keeps as they are.
var (
	minNanoTime = time.Unix(0, math.MinInt64+1)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// UnixNano returns t in Unix nanoseconds, clamped to what an int64 holds (years 1678
// to 2262, beyond which t.UnixNano is undefined), and never math.MinInt64, so that a
// driver that keeps times as int64 nanoseconds can keep that for the zero time.
func UnixNano(t time.Time) int64 {
	switch {
	case t.Before(minNanoTime):
		return math.MinInt64 + 1
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.Unix()))
	return binary.LittleEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

// decodeTime decodes a time appendTime wrote; it refuses nanoseconds that are not
// within a second, which no time.Time encodes to.
func decodeTime(b []byte) (time.Time, bool) {
	ns := binary.LittleEndian.Uint32(b[8:])
	return time.Unix(int64(binary.LittleEndian.Uint64(b)), int64(ns)), ns < 1e9
}
