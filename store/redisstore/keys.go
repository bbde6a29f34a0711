package redisstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

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
//	<prefix>:{<namespace>:<id>}:v   the entry of {namespace, id}
//	<prefix>:{<namespace>:<id>}:l   the portable layer's lease record of that key
//	<prefix>:{%01:<counter>}:v      the portable layer's record of a version counter
//	<prefix>:{<namespace>:<id>}:c   the pub/sub channel of the entry and its lease
//
// with namespace and id escaped by escape, so that neither holds ':', '{', '}' or a
// glob metacharacter. The portable layer keeps the lease of {ns, id} as the record
// {"\x01"+ns, id} (store.InternalPrefix); it is named with kind 'l' and the entry's
// own hash tag, so that an entry, its lease and its channel share a Cluster slot, and
// a watched key needs one subscription, not two. A counter {"\x01", name} is named
// like any other record; its escaped namespace %01 starts no user namespace.
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
	if p == "" {
		return errors.New("redisstore: empty prefix")
	}
	if err := store.CheckPrefix(p, 64, "{}"); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	return nil
}

// kindOf returns the namespace that goes into the hash tag of the records of ns, and
// their kind: a lease namespace ("\x01" and a user namespace) is its user namespace
// with kind 'l'; every other namespace is itself, with kind 'v'.
func kindOf(ns string) (string, byte) {
	if user, ok := strings.CutPrefix(ns, store.InternalPrefix); ok && user != "" {
		return user, kindLease
	}
	return ns, kindValue
}

// name returns the name of k's record. Its hash tag is the escaped namespace and id,
// so the records of one key share a Cluster slot, and different keys spread over all
// slots.
func (kr keyer) name(k store.Key) string {
	ns, kind := kindOf(k.Namespace)
	return kr.key(store.Key{Namespace: ns, ID: k.ID}, kind)
}

// nameBuf is the memory of the record names of one batch, pooled: GetMany needs
// them only until its MGET is on the wire, and at 100 keys they were a warm batch's
// largest allocation after the values.
type nameBuf struct {
	buf   []byte
	names []string
	args  []any // an MGET's arguments, cleared after use
}

var namePool sync.Pool // of *nameBuf

// maxPooledNames bounds the name memory kept in namePool, so that one huge batch
// does not pin its names.
const maxPooledNames = 64 << 10

// namesPooled returns the record names of ks, as name does, in pooled memory; the
// caller calls put once nothing uses the names any more.
func (kr keyer) namesPooled(ks []store.Key) *nameBuf {
	nb, _ := namePool.Get().(*nameBuf)
	if nb == nil {
		nb = &nameBuf{}
	}
	nb.fill(kr, ks)
	return nb
}

// fill sets nb.names to the names of ks, in nb's memory, grown as needed.
func (nb *nameBuf) fill(kr keyer, ks []store.Key) {
	if cap(nb.names) < len(ks) {
		nb.names = make([]string, len(ks))
	}
	nb.buf, nb.names = kr.appendNames(nb.buf[:0], nb.names[:len(ks)], ks)
}

// put returns nb to the pool; its names must not be used after.
func (nb *nameBuf) put() {
	if cap(nb.buf) > maxPooledNames || cap(nb.names)*16 > maxPooledNames || cap(nb.args)*16 > maxPooledNames {
		return
	}
	clear(nb.names) // no pooled string keeps a buffer alive
	namePool.Put(nb)
}

// appendNames sets out[i] to the name of ks[i], built in buf, which it returns,
// grown (made anew) when the names do not fit: a batch costs at most one allocation
// for its names, not one per key. The size is that of names that need no escaping
// (cachier's IDs are digests); escapes grow buf, which leaves the names already made
// in the old array, never written again.
func (kr keyer) appendNames(buf []byte, out []string, ks []store.Key) ([]byte, []string) {
	size := 0
	for _, k := range ks {
		size += len(kr.prefix) + len(k.Namespace) + len(k.ID) + 6
	}
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	var lastNS, lastEsc string // the keys of a batch usually share their namespace
	for i, k := range ks {
		ns, kind := kindOf(k.Namespace)
		start := len(buf)
		buf = append(buf, kr.prefix...)
		buf = append(buf, ":{"...)
		if ns == lastNS && i > 0 {
			buf = append(buf, lastEsc...)
		} else {
			nsStart := len(buf)
			buf = appendEscaped(buf, ns)
			lastNS, lastEsc = ns, unsafe.String(unsafe.SliceData(buf[nsStart:]), len(buf)-nsStart)
		}
		buf = append(buf, ':')
		buf = appendEscaped(buf, k.ID)
		buf = append(buf, '}', ':', kind)
		// buf[start:] is never written again: later appends go past it, or to a
		// new array.
		out[i] = unsafe.String(&buf[start], len(buf)-start)
	}
	return buf, out
}

// channel returns the pub/sub channel of k's record: the entry and the lease of one
// key share it.
func (kr keyer) channel(k store.Key) string {
	ns, _ := kindOf(k.Namespace)
	return kr.key(store.Key{Namespace: ns, ID: k.ID}, kindChannel)
}

// key returns the name of the record of the given kind for the (unmapped) key k.
func (kr keyer) key(k store.Key, kind byte) string {
	b := kr.appendKey(make([]byte, 0, kr.nameLen(k)), k.Namespace, k.ID, kind)
	// b is not written again; an escape that outgrew the estimate cost one more
	// allocation in append.
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// appendKey appends to b the name of the record of the given kind for the (unmapped)
// key {ns, id}.
func (kr keyer) appendKey(b []byte, ns, id string, kind byte) []byte {
	b = append(b, kr.prefix...)
	b = append(b, ":{"...)
	b = appendEscaped(b, ns)
	b = append(b, ':')
	b = appendEscaped(b, id)
	return append(b, '}', ':', kind)
}

// pattern returns a SCAN MATCH pattern for every record of ns.
func (kr keyer) pattern(ns string) string {
	ns, kind := kindOf(ns)
	return kr.glob + ":{" + escape(ns) + ":*}:" + string(kind)
}

// allPattern matches every record the store (with this prefix) writes.
func (kr keyer) allPattern() string { return kr.glob + ":{*" }

// parse recovers the record's key (with the lease namespace for a lease record) from
// a record name, or reports false for a channel or a name the store did not write.
func (kr keyer) parse(name string) (store.Key, bool) {
	rest, ok := strings.CutPrefix(name, kr.prefix+":{")
	if !ok || len(rest) < 3 || rest[len(rest)-2] != ':' || rest[len(rest)-3] != '}' {
		return store.Key{}, false
	}
	kind := rest[len(rest)-1]
	rest = rest[:len(rest)-3]
	ens, eid, ok := strings.Cut(rest, ":")
	if !ok {
		return store.Key{}, false
	}
	ns, err1 := unescape(ens)
	id, err2 := unescape(eid)
	if err1 != nil || err2 != nil {
		return store.Key{}, false
	}
	internal := strings.HasPrefix(ns, store.InternalPrefix)
	switch {
	case kind == kindValue && (!internal || ns == store.InternalPrefix):
	case kind == kindLease && !internal:
		ns = store.InternalPrefix + ns
	default:
		return store.Key{}, false
	}
	return store.Key{Namespace: ns, ID: id}, true
}

// plain reports whether an ASCII byte stands for itself in an escaped name. Bytes
// of 0x80 and above (UTF-8 beyond ASCII) also stand for themselves: they cannot be
// ':', '{', '}' or a glob metacharacter, and keys stay readable in redis-cli.
func plain(c byte) bool { return plainBytes[c] }

// plainBytes is plain as a table: key building looks up every byte of every key.
var plainBytes = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80 ||
			strings.IndexByte("-._/~!$&'()+,;=@", byte(c)) >= 0
	}
	return t
}()

func escape(s string) string { return string(appendEscaped(nil, s)) }

const hexDigits = "0123456789ABCDEF"

// appendEscaped appends s to b with every byte that is not plain written as %XX; an
// s that needs no escape is one copy.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := range len(s) {
		if c := s[i]; !plainBytes[c] {
			b = append(b, s[start:i]...)
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
			start = i + 1
		}
	}
	return append(b, s[start:]...)
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

func stamp(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(store.UnixNano(t)) ^ 1<<63
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
	return appendRecord(make([]byte, 0, headerLenExp+len(e.Value)), e)
}

// appendRecord appends e's record (its header, then its value) to b.
func appendRecord(b []byte, e store.Entry) []byte {
	if !e.ExpiresAt.IsZero() {
		b = append(b, recMagic, recVersionExp)
		b = binary.BigEndian.AppendUint64(b, stamp(e.StoredAt))
		b = binary.BigEndian.AppendUint64(b, stamp(e.ExpiresAt))
		return append(b, e.Value...)
	}
	b = append(b, recMagic, recVersion)
	b = binary.BigEndian.AppendUint64(b, stamp(e.StoredAt))
	return append(b, e.Value...)
}

// replyBytes returns the bytes of a string go-redis read from a reply, without a copy.
// go-redis reads every bulk string into a new array of its own and keeps no reference
// to it once the command is dropped, so the bytes become the record's alone: the
// caller, who owns an entry's Value, may write to them without changing any string
// still in use. It is what go-redis's own StringCmd.Bytes does for Get; the batch and
// the scripts' replies, read as []any, need it spelled out.
func replyBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

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
