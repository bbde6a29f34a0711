package named

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/envelope"
)

// errCorrupt reports saved bytes that are not a record of this package, or a record
// whose map does not decode. It is logged and counted, and the cache is treated as
// missing.
var errCorrupt = errors.New("named: corrupt saved cache")

// Record layout: an envelope frame (magic, format version, codec, flags, metadata,
// payload, CRC-32C) whose metadata lists the version counters the map depends on
// (envelope.Dep, the same vocabulary cachier uses for tags and dependencies), and
// whose payload is:
//
//	byte    record format version (1)
//	byte    kind: 0 the encoded map follows; 1 marker only (a custom Saver keeps the map)
//	rest    the map, encoded with the cache's codec (kind 0 only)
//
// The counters are the cache's own and its ancestors', with the values they had when
// the in-memory map was started (its basis). A record whose basis differs from the
// counters' current values predates an invalidation: it is stale and never loaded.
const recordVersion = 1

const (
	kindData   byte = 0
	kindMarker byte = 1
)

type record struct {
	codec   envelope.Codec
	kind    byte
	basis   map[string]uint64
	payload []byte
}

// encodeRecord frames a record. vers may be nil (unknown versions, or a store without
// counters): the record then carries no basis, which a later load reads as all zero.
func encodeRecord(codec envelope.Codec, kind byte, names []string, vers []uint64, payload []byte) []byte {
	var meta envelope.Meta
	if len(vers) == len(names) {
		for i, n := range names {
			meta.Deps = append(meta.Deps, envelope.Dep{Name: n, Version: vers[i]})
		}
	}
	b := make([]byte, 0, 2+len(payload))
	b = append(b, recordVersion, kind)
	b = append(b, payload...)
	return envelope.Seal(codec, meta, b)
}

// decodeRecord checks and parses saved bytes. Every error matches errCorrupt; nothing
// here panics or allocates much more than the input's size.
func decodeRecord(b []byte) (record, error) {
	codec, meta, p, err := envelope.Open(b)
	if err != nil {
		return record{}, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if meta.Flags != 0 || meta.TTL != 0 {
		return record{}, fmt.Errorf("%w: unexpected frame flags %#x", errCorrupt, meta.Flags)
	}
	if len(p) < 2 {
		return record{}, fmt.Errorf("%w: %d-byte record", errCorrupt, len(p))
	}
	if p[0] != recordVersion {
		return record{}, fmt.Errorf("%w: unknown record version %d", errCorrupt, p[0])
	}
	r := record{codec: codec, kind: p[1], payload: p[2:]}
	switch {
	case r.kind != kindData && r.kind != kindMarker:
		return record{}, fmt.Errorf("%w: unknown record kind %d", errCorrupt, r.kind)
	case r.kind == kindMarker && len(r.payload) != 0:
		return record{}, fmt.Errorf("%w: %d bytes after a marker", errCorrupt, len(r.payload))
	}
	r.basis = make(map[string]uint64, len(meta.Deps))
	for _, d := range meta.Deps {
		r.basis[d.Name] = d.Version
	}
	return r, nil
}

// stale reports whether a record saved under basis predates the current values vers
// of the counters names. A counter the record does not name (a parent declared after
// the save) is taken as 0, so such a record is stale once that parent has ever been
// invalidated: conservative, never wrongly fresh. Without versions (nil) nothing is
// stale.
func stale(basis map[string]uint64, names []string, vers []uint64) bool {
	if len(vers) != len(names) {
		return false
	}
	for i, n := range names {
		if basis[n] != vers[i] {
			return true
		}
	}
	return false
}

// codecID names the built-in codecs in the frame, so that a map saved with one codec
// is never decoded with another.
func codecID(c cachier.Codec) envelope.Codec {
	// Comparing interfaces panics only for two identical non-comparable dynamic types;
	// the built-ins are comparable, so any user codec compares as unequal.
	switch c {
	case cachier.CBOR:
		return envelope.CBOR
	case cachier.JSON:
		return envelope.JSON
	case cachier.Gob:
		return envelope.Gob
	}
	return envelope.Custom
}

// undeclared returns, sorted, the counters a record's basis names that are not in
// names: ancestors recorded by a process that declared them.
func undeclared(basis map[string]uint64, names []string) []string {
	var out []string
	for n := range basis {
		if !slices.Contains(names, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
