package s3store

import (
	"fmt"

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

// An entry object is the portable layer's entry record (store.AppendRecord) with an
// empty tag: the header carries StoredAt so that Get is one GetObject. The value is a
// sealed envelope with a checksum of its own, so the object has none: a truncated or
// overwritten object fails the envelope's check and is a miss. Objects in the layout
// this package wrote before ("cS3E", a CRC-32C of its own) read as corrupt misses, and
// the next computation of the key replaces them; Entries skips them and DeleteBefore
// removes them.
const (
	maxObjectSize = 5 << 30 // S3's limit for one PutObject
	// MaxValueSize is the largest value Set accepts; larger values get store.ErrTooLarge.
	MaxValueSize = maxObjectSize - store.MaxRecordHeader
	// headerLen is the shortest object an entry can be.
	headerLen = store.MaxRecordHeader - 12
)

func encodeEntry(e store.Entry) []byte { return store.AppendRecord(nil, e, nil) }

// decodeHeader decodes the header at the start of b, of the object o, into o's Info
// (without the namespace).
func decodeHeader(b []byte, o listed) (store.Info, string) {
	h, err := store.DecodeRecordHeader(b)
	switch {
	case err != nil:
		return store.Info{}, err.Error()
	case len(h.Tag) != 0:
		return store.Info{}, "an entry record with a tag"
	case o.size < int64(h.Len):
		return store.Info{}, fmt.Sprintf("object of %d bytes, shorter than its header", o.size)
	}
	return store.Info{Key: store.Key{ID: o.id}, Size: o.size - int64(h.Len), StoredAt: h.StoredAt, ExpiresAt: h.ExpiresAt}, ""
}

// decodeEntry checks and decodes a whole entry object. The value aliases b.
func decodeEntry(b []byte) (store.Entry, string) {
	e, tag, err := store.DecodeRecord(b)
	switch {
	case err != nil:
		return store.Entry{}, err.Error()
	case len(tag) != 0:
		return store.Entry{}, "an entry record with a tag"
	}
	return e, ""
}
