package redisstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cachier-go/cachier/store"
)

// ErrCorrupt reports a record under the store's prefix that cannot be parsed: too
// short, an unknown format version, or garbled. Get wraps it together with
// store.ErrNotFound, so callers treat it as a miss. It is store.ErrCorrupt, so
// cachier counts it as a decode error.
var ErrCorrupt = store.ErrCorrupt

// Record kinds, the last byte of every key.
const (
	kindValue   = 'v'
	kindLease   = 'l'
	kindChannel = 'c'
)

// keyer builds and parses the store's key names:
//
//	<prefix>:{<namespace>:<id>}:v   the entry
//	<prefix>:{<namespace>:<id>}:l   the calculation lease
//	<prefix>:{<namespace>:<id>}:c   the pub/sub channel of both
//
// with namespace and id escaped by escape, so that neither holds ':', '{', '}' or a
// glob metacharacter.
type keyer struct {
	prefix string // validated: no braces, no spaces, printable
	glob   string // prefix with glob metacharacters escaped, for SCAN MATCH
}

func newKeyer(prefix string) (keyer, error) {
	if err := validatePrefix(prefix); err != nil {
		return keyer{}, err
	}
	return keyer{prefix: prefix, glob: globEscape(prefix)}, nil
}

// validatePrefix accepts printable ASCII without spaces and braces (braces would
// move the hash tag), up to 64 bytes.
func validatePrefix(p string) error {
	if p == "" || len(p) > 64 {
		return fmt.Errorf("redisstore: prefix %q must be 1 to 64 bytes", p)
	}
	for i := range len(p) {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '{' || c == '}' {
			return fmt.Errorf("redisstore: prefix %q may hold only printable ASCII without spaces and braces", p)
		}
	}
	return nil
}

// key returns the name of the record of the given kind for k. Its hash tag is the
// escaped namespace and id, so the entry, the lease and the channel of one key share
// a Cluster slot, and different keys spread over all slots.
func (kr keyer) key(k store.Key, kind byte) string {
	var b strings.Builder
	b.Grow(len(kr.prefix) + len(k.Namespace) + len(k.ID) + 8)
	b.WriteString(kr.prefix)
	b.WriteString(":{")
	appendEscaped(&b, k.Namespace)
	b.WriteByte(':')
	appendEscaped(&b, k.ID)
	b.WriteString("}:")
	b.WriteByte(kind)
	return b.String()
}

// pattern returns a SCAN MATCH pattern for every record of the given kind in ns.
func (kr keyer) pattern(ns string, kind byte) string {
	return kr.glob + ":{" + escape(ns) + ":*}:" + string(kind)
}

// allPattern matches every record the store (with this prefix) writes.
func (kr keyer) allPattern() string { return kr.glob + ":{*" }

// parse recovers the key and kind from a record name, or reports false for a name
// the store did not write.
func (kr keyer) parse(name string) (store.Key, byte, bool) {
	rest, ok := strings.CutPrefix(name, kr.prefix+":{")
	if !ok || len(rest) < 3 || rest[len(rest)-2] != ':' || rest[len(rest)-3] != '}' {
		return store.Key{}, 0, false
	}
	kind := rest[len(rest)-1]
	rest = rest[:len(rest)-3]
	ens, eid, ok := strings.Cut(rest, ":")
	if !ok {
		return store.Key{}, 0, false
	}
	ns, err1 := unescape(ens)
	id, err2 := unescape(eid)
	if err1 != nil || err2 != nil {
		return store.Key{}, 0, false
	}
	return store.Key{Namespace: ns, ID: id}, kind, true
}

// plain reports whether an ASCII byte stands for itself in an escaped name. Bytes
// of 0x80 and above (UTF-8 beyond ASCII) also stand for themselves: they cannot be
// ':', '{', '}' or a glob metacharacter, and keys stay readable in redis-cli.
func plain(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("-._/~!$&'()+,;=@", c) >= 0
}

func escape(s string) string {
	var b strings.Builder
	appendEscaped(&b, s)
	return b.String()
}

const hexDigits = "0123456789ABCDEF"

// appendEscaped writes s with every byte that is not plain written as %XX.
func appendEscaped(b *strings.Builder, s string) {
	start := 0
	for i := range len(s) {
		if c := s[i]; !plain(c) {
			b.WriteString(s[start:i])
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			start = i + 1
		}
	}
	b.WriteString(s[start:])
}

// unescape reverses escape. It accepts only what escape produces, so that every
// stored name maps back to exactly one string.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		for i := range len(s) {
			if !plain(s[i]) {
				return "", ErrCorrupt
			}
		}
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			out = append(out, c)
			continue
		}
		if c != '%' || i+2 >= len(s) {
			return "", ErrCorrupt
		}
		hi, lo := strings.IndexByte(hexDigits, s[i+1]), strings.IndexByte(hexDigits, s[i+2])
		if hi < 0 || lo < 0 {
			return "", ErrCorrupt
		}
		d := byte(hi<<4 | lo)
		if plain(d) {
			return "", ErrCorrupt // not canonical
		}
		out = append(out, d)
		i += 2
	}
	return string(out), nil
}

// globEscape escapes the metacharacters of Redis's glob patterns.
func globEscape(s string) string {
	var b strings.Builder
	for i := range len(s) {
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\', '^':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// A value record is a 10-byte header, then the value:
//
//	'c' 0x01 stamp[8]
//
// stamp is big-endian, 0 for the zero time and otherwise the Unix nanoseconds with
// the sign bit flipped, so that comparing stamps byte by byte (as the DeleteBefore
// script does) orders times.
const (
	recMagic   = 'c'
	recVersion = 1
	headerLen  = 10
	// A record of an entry with ExpiresAt: version 2, and the expiry stamp after
	// StoredAt's. The engine expires the key at the same time (PXAT).
	recVersionExp = 2
	headerLenExp  = 18
)

var (
	recHead    = string([]byte{recMagic, recVersion})
	recHeadExp = string([]byte{recMagic, recVersionExp})
)

// Bounds of time.Time.UnixNano.
var (
	minStampTime = time.Unix(0, math.MinInt64+1)
	maxStampTime = time.Unix(0, math.MaxInt64)
)

func stamp(t time.Time) uint64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minStampTime):
		t = minStampTime
	case t.After(maxStampTime):
		t = maxStampTime
	}
	return uint64(t.UnixNano()) ^ 1<<63
}

func unstamp(u uint64) time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(u^1<<63))
}

func stampBytes(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, stamp(t))
}

// encodeRecord returns the header and value as one record.
func encodeRecord(e store.Entry) []byte {
	if !e.ExpiresAt.IsZero() {
		b := make([]byte, headerLenExp, headerLenExp+len(e.Value))
		b[0], b[1] = recMagic, recVersionExp
		binary.BigEndian.PutUint64(b[2:], stamp(e.StoredAt))
		binary.BigEndian.PutUint64(b[10:], stamp(e.ExpiresAt))
		return append(b, e.Value...)
	}
	b := make([]byte, headerLen, headerLen+len(e.Value))
	b[0], b[1] = recMagic, recVersion
	binary.BigEndian.PutUint64(b[2:], stamp(e.StoredAt))
	return append(b, e.Value...)
}

// decodeRecord parses a record; the returned Value aliases b.
func decodeRecord(b []byte) (store.Entry, error) {
	h, err := decodeHeader(b)
	if err != nil {
		return store.Entry{}, err
	}
	return store.Entry{Value: b[h.len:], StoredAt: h.at, ExpiresAt: h.exp}, nil
}

// recHeader is the parsed head of a record.
type recHeader struct {
	at, exp time.Time
	len     int // bytes before the value
}

func decodeHeader(b []byte) (recHeader, error) {
	switch {
	case len(b) >= headerLen && b[0] == recMagic && b[1] == recVersion:
		return recHeader{at: unstamp(binary.BigEndian.Uint64(b[2:10])), len: headerLen}, nil
	case len(b) >= headerLenExp && b[0] == recMagic && b[1] == recVersionExp:
		exp := unstamp(binary.BigEndian.Uint64(b[10:18]))
		if exp.IsZero() {
			return recHeader{}, ErrCorrupt
		}
		return recHeader{at: unstamp(binary.BigEndian.Uint64(b[2:10])), exp: exp, len: headerLenExp}, nil
	}
	return recHeader{}, ErrCorrupt
}

// A lease record identifies the owner, deterministically, so that the renew and
// release scripts compare it byte for byte:
//
//	'L' 0x01 uvarint(len(host)) host varint(pid) token
const (
	leaseMagic   = 'L'
	leaseVersion = 1
)

func encodeOwner(o store.Owner) string {
	b := make([]byte, 0, 2+2*binary.MaxVarintLen64+len(o.Host)+len(o.Token))
	b = append(b, leaseMagic, leaseVersion)
	b = binary.AppendUvarint(b, uint64(len(o.Host)))
	b = append(b, o.Host...)
	b = binary.AppendVarint(b, int64(o.PID))
	b = append(b, o.Token...)
	return string(b)
}

func decodeOwner(s string) (store.Owner, error) {
	if len(s) < 2 || s[0] != leaseMagic || s[1] != leaseVersion {
		return store.Owner{}, ErrCorrupt
	}
	b := []byte(s[2:])
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return store.Owner{}, ErrCorrupt
	}
	b = b[w:]
	host := string(b[:n])
	b = b[n:]
	pid, w := binary.Varint(b)
	if w <= 0 || pid < math.MinInt32 || pid > math.MaxInt32 {
		return store.Owner{}, ErrCorrupt
	}
	return store.Owner{Host: host, PID: int(pid), Token: string(b[w:])}, nil
}
