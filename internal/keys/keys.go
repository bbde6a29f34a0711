// Package keys derives store keys from function arguments.
//
// An argument is encoded with CBOR's core deterministic encoding (RFC 8949 §4.2.1:
// sorted map keys, shortest integers and floats) and hashed with SHA-256, so two equal
// arguments give the same key in every process on every machine, and different ones
// never do. A type that cannot be encoded faithfully (an unexported field, a func, a
// chan, an interface whose dynamic value is unknown until run time) would let two
// different arguments share a key, so Check rejects it before any key is derived.
package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

var (
	cborMarshaler   = reflect.TypeFor[cbor.Marshaler]()
	binaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

// encMode is the canonical encoding. Times are encoded as Unix seconds with
// sub-second precision, so equal instants in different locations share a key.
var encMode = func() cbor.UserBufferEncMode {
	opts := cbor.CoreDetEncOptions()
	opts.Time = cbor.TimeUnixDynamic
	em, err := opts.UserBufferEncMode()
	if err != nil {
		panic(err) // static options: a failure is a programming error caught by tests
	}
	return em
}()

// Purpose tells Check what the type is for, which changes what is acceptable.
type Purpose int

const (
	// ForKey: the type is hashed into a key; it must encode every bit that makes
	// two values different.
	ForKey Purpose = iota
	// ForValue: the type is stored and decoded again; it must round-trip.
	ForValue
	// ForSaved: as ForValue, for a named cache's map (package named), whose messages
	// point at named's remedies.
	ForSaved
)

// Check reports why values of type t cannot be used for p, naming the offending
// field path, or nil if they can.
func Check(t reflect.Type, p Purpose) error {
	return check(t, p, t.String(), map[reflect.Type]bool{})
}

func hasMarshaler(t reflect.Type) bool {
	for _, m := range []reflect.Type{cborMarshaler, binaryMarshaler, textMarshaler} {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			return true
		}
	}
	return false
}

func check(t reflect.Type, p Purpose, path string, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	if hasMarshaler(t) {
		return nil // the type says how it encodes; trust it, as encoding/json does
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil
	case reflect.Pointer, reflect.Slice, reflect.Array:
		seen[t] = true
		return check(t.Elem(), p, path+elemSuffix(t), seen)
	case reflect.Map:
		seen[t] = true
		if err := check(t.Key(), p, path+"[key]", seen); err != nil {
			return err
		}
		return check(t.Elem(), p, path+"[value]", seen)
	case reflect.Struct:
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				switch p {
				case ForValue:
					return fmt.Errorf("%s.%s is unexported, so it cannot be encoded and a cached result would lose it; export it, give %s MarshalBinary and UnmarshalBinary methods, or cache with a Codec of your own (cachier.WithCodec)", path, f.Name, t)
				case ForSaved:
					return fmt.Errorf("%s.%s is unexported, so it cannot be encoded and a saved map would lose it; %s", path, f.Name, fix(p, ""))
				}
				return fmt.Errorf("%s.%s is unexported, so it cannot be encoded and two different values could share a key; export it, give %s a MarshalBinary method, or use cachier.WithKey", path, f.Name, t)
			}
			if f.Tag.Get("cbor") == "-" || (f.Tag.Get("cbor") == "" && f.Tag.Get("json") == "-") {
				if p == ForKey {
					return fmt.Errorf("%s.%s is excluded from encoding by its struct tag, so two arguments that differ only in it would share a key; remove the tag or use cachier.WithKey", path, f.Name)
				}
				continue
			}
			if err := check(f.Type, p, path+"."+f.Name, seen); err != nil {
				return err
			}
		}
		return nil
	case reflect.Interface:
		return fmt.Errorf("%s is an interface (%s): its dynamic value cannot be checked or decoded faithfully; %s", path, t, fix(p, "use a concrete type"))
	default: // func, chan, unsafe.Pointer, uintptr, complex
		return fmt.Errorf("%s has kind %s, which cannot be encoded faithfully; %s", path, t.Kind(), fix(p, "remove it"))
	}
}

// fix says what to do about a type that cannot be encoded: an argument can be keyed
// with WithKey instead; a result cannot, so it needs another type or a Codec.
func fix(p Purpose, first string) string {
	if p == ForSaved {
		return "a saved map must load back as it was: use concrete types with exported fields, give the type MarshalBinary and UnmarshalBinary methods, keep the cache in memory (named.Persistent(false)), or save it with a Loader and Saver or a Codec of your own (named.WithCodec)"
	}
	if p == ForValue {
		return "a cached result must round-trip through the codec: return a concrete type that encodes (the function's error is returned, never cached), or cache with a Codec of your own (cachier.WithCodec)"
	}
	return first + " or use cachier.WithKey"
}

func elemSuffix(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		return "(*)"
	}
	return "[]"
}

// Encode returns the canonical encoding of v.
func Encode(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("keys: encode %T: %w", v, err)
	}
	return b, nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Digest returns the hex SHA-256 of the canonical encoding of v.
func Digest(v any) (string, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if err := encMode.MarshalToBuffer(v, buf); err != nil {
		return "", fmt.Errorf("keys: encode %T: %w", v, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:]), nil
}

// Memoizable reports whether Go equality on t agrees exactly with equality of the
// canonical encoding, so that a digest may be remembered per value: booleans,
// integers, strings, and arrays and structs of them. Floats are excluded (NaN is not
// equal to itself, and -0 equals 0 but encodes differently), as are pointers, whose
// equality is identity while their encoding is the pointee's.
func Memoizable(t reflect.Type) bool {
	if hasMarshaler(t) {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Array:
		return Memoizable(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !t.Field(i).IsExported() || !Memoizable(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}
