package memcachestore

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/cachier-go/cachier/store"
)

// An entry item holds the portable layer's entry record (store.AppendRecord), whose
// tag is the namespace generation the entry was written under and the key:
//
//	tag: gen:u64 big-endian | uvarint len(ns) | ns | id
//
// The key is there because item names are hashes: a record that names another key is
// corrupt. There is no checksum of this package's own: the value is a sealed envelope
// with one. Items in the layout written before ("cmE1"/"cmE2", with a CRC-32C of
// their own) read as corrupt misses and are replaced when their key is computed again.

// errTag describes a tag that does not decode; the caller wraps it with ErrCorrupt.
var errTag = errors.New("record tag does not decode")

// entryRecord is a decoded entry. Value aliases the record bytes.
type entryRecord struct {
	gen       uint64
	storedAt  time.Time
	expiresAt time.Time
	ns, id    string
	value     []byte
}

// entrySize is the length of an entry record with an expiry (the longer form).
func entrySize(ns, id string, value []byte) int {
	return store.RecordSize(len(value), make([]byte, tagLen(ns, id)), true)
}

func tagLen(ns, id string) int {
	return 8 + len(binary.AppendUvarint(nil, uint64(len(ns)))) + len(ns) + len(id)
}

// appendEntryExp appends the record of an entry with an expiry (none when zero).
func appendEntryExp(dst []byte, gen uint64, storedAt, expiresAt time.Time, ns, id string, value []byte) []byte {
	tag := make([]byte, 0, tagLen(ns, id))
	tag = binary.BigEndian.AppendUint64(tag, gen)
	tag = binary.AppendUvarint(tag, uint64(len(ns)))
	tag = append(append(tag, ns...), id...)
	return store.AppendRecord(dst, store.Entry{Value: value, StoredAt: storedAt, ExpiresAt: expiresAt}, tag)
}

func decodeEntry(b []byte) (entryRecord, error) {
	e, tag, err := store.DecodeRecord(b)
	if err != nil {
		return entryRecord{}, err
	}
	if len(tag) < 8 {
		return entryRecord{}, errTag
	}
	n, w := binary.Uvarint(tag[8:])
	rest := tag[8+max(w, 0):]
	if w <= 0 || n > uint64(len(rest)) || w != len(binary.AppendUvarint(nil, n)) {
		return entryRecord{}, errTag
	}
	return entryRecord{
		gen: binary.BigEndian.Uint64(tag), storedAt: e.StoredAt, expiresAt: e.ExpiresAt,
		ns: string(rest[:n]), id: string(rest[n:]), value: e.Value,
	}, nil
}
