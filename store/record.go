package store

import (
	"encoding/binary"
	"errors"
	"fmt"
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

// counterKey returns the record that holds counter name.
func counterKey(name string) Key { return Key{Namespace: InternalPrefix, ID: name} }

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
