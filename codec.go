package cachier

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"math"

	"github.com/fxamacker/cbor/v2"

	"github.com/cachier-go/cachier/internal/envelope"
)

// A Codec turns results into bytes and back. Implementations must be safe for
// concurrent use. Decoding reads bytes that anyone with write access to the store may
// have written: it must only fill in the value it is given, never run code chosen by
// the bytes (which is why there is no pickle here).
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// codecID lets an entry record which built-in codec wrote it.
type codecID interface{ id() envelope.Codec }

// Built-in codecs.
var (
	// CBOR (RFC 8949) is the default: compact, fast, and typed. A hit decodes at
	// most 256 levels deep and, checked by a scan before decoding, allocates at most
	// DecodeExpansion times the entry's size (plus 1 MiB); a larger entry is a miss.
	CBOR Codec = cborCodec{}
	// JSON is readable by any tool that inspects the store. It is bounded like CBOR
	// (nesting 10,000 levels). As encoding/json does, it stores the bytes of a
	// string that are not UTF-8 as U+FFFD, so such a string does not come back as it
	// was; CBOR keeps every byte.
	JSON Codec = jsonCodec{}
	// Gob is Go's own format. It cannot be bounded before it decodes, so Wrap accepts
	// it only for result types that are not recursive and whose elements allocate
	// at most GobMaxExpansion bytes per encoded byte.
	Gob Codec = gobCodec{}
)

// cborDec bounds what hostile bytes can make the decoder allocate: nesting is
// limited, and lengths are checked against the bytes actually present before any
// allocation.
var cborDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  256,
		MaxArrayElements: math.MaxInt32,
		MaxMapPairs:      math.MaxInt32,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		// A Go string may hold any bytes, and Marshal writes them as they are: decode
		// them as they are too, or such a result is a corrupt entry on every read.
		UTF8: cbor.UTF8DecodeInvalid,
	}.DecMode()
	if err != nil {
		panic(err) // static options
	}
	return dm
}()

type cborCodec struct{}

func (cborCodec) Marshal(v any) ([]byte, error)   { return cbor.Marshal(v) }
func (cborCodec) Unmarshal(b []byte, v any) error { return cborDec.Unmarshal(b, v) }
func (cborCodec) id() envelope.Codec              { return envelope.CBOR }
func (jsonCodec) Marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func (jsonCodec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func (jsonCodec) id() envelope.Codec              { return envelope.JSON }
func (gobCodec) Unmarshal(b []byte, v any) error  { return gob.NewDecoder(bytes.NewReader(b)).Decode(v) }
func (gobCodec) id() envelope.Codec               { return envelope.Gob }

type jsonCodec struct{}
type gobCodec struct{}

func (gobCodec) Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func idOf(c Codec) envelope.Codec {
	if i, ok := c.(codecID); ok {
		return i.id()
	}
	return envelope.Custom
}
