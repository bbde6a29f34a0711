package cachier

import (
	"encoding"
	"encoding/gob"
	"fmt"
	"reflect"
)

// GobMaxExpansion bounds how many bytes a hit may allocate per byte of a Gob entry.
// encoding/gob has no limit on nesting and no way to be bounded before it decodes,
// so Wrap accepts Gob only for result types that bound both by their shape: types
// that are not recursive (a recursive type let a 9 MB entry nested 3,000,000 deep
// overflow every reader's stack), and whose repeated parts (slice elements, map
// entries) allocate at most GobMaxExpansion bytes per byte that encodes them (gob
// spends at least one byte per element, two per map entry). Use CBOR, the default,
// for other types: its decoder is bounded per entry (see Codec).
const GobMaxExpansion = 64

var (
	gobDecoderType   = reflect.TypeFor[gob.GobDecoder]()
	binaryUnmarshal  = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	textUnmarshalerT = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkGob reports why Gob cannot safely decode values of t, or nil.
func checkGob(t reflect.Type) error {
	c := gobChecker{onPath: map[reflect.Type]bool{}, cost: map[reflect.Type]int64{}}
	if err := c.walk(t, t.String()); err != nil {
		return err
	}
	if c.worst > GobMaxExpansion {
		return fmt.Errorf("%s: an entry could make a hit allocate %d bytes per byte (%s), more than GobMaxExpansion (%d), and gob cannot be bounded before it decodes; use CBOR (the default), or smaller elements",
			t, c.worst, c.worstAt, GobMaxExpansion)
	}
	return nil
}

type gobChecker struct {
	onPath  map[reflect.Type]bool
	cost    map[reflect.Type]int64 // bytes one value allocates beyond its own slot, excluding repeated parts
	worst   int64
	worstAt string
}

func opaqueToGob(t reflect.Type) bool {
	for _, m := range []reflect.Type{gobDecoderType, binaryUnmarshal, textUnmarshalerT} {
		if reflect.PointerTo(t).Implements(m) {
			return true // decodes itself from bytes it is given, which the entry bounds
		}
	}
	return false
}

// walk checks t for recursion, records the worst expansion of its repeated parts,
// and returns the bytes one value of t allocates outside its slot.
func (c *gobChecker) walk(t reflect.Type, path string) error {
	if c.onPath[t] {
		return fmt.Errorf("%s is recursive (%s contains itself), so a gob entry could nest deep enough to crash the reader; use CBOR (the default), which caps nesting", path, t)
	}
	if _, done := c.cost[t]; done || opaqueToGob(t) {
		return nil
	}
	c.onPath[t] = true
	defer delete(c.onPath, t)
	var own int64
	unit := func(elemPath string, per int64, minBytes int64) {
		if r := per / minBytes; r > c.worst {
			c.worst, c.worstAt = r, elemPath
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		if err := c.walk(t.Elem(), path+"(*)"); err != nil {
			return err
		}
		own = int64(t.Elem().Size()) + c.cost[t.Elem()]
	case reflect.Array:
		if err := c.walk(t.Elem(), path+"[]"); err != nil {
			return err
		}
		own = int64(t.Len()) * c.cost[t.Elem()]
	case reflect.Slice:
		if err := c.walk(t.Elem(), path+"[]"); err != nil {
			return err
		}
		unit(path+"[]", int64(t.Elem().Size())+c.cost[t.Elem()], 1)
	case reflect.Map:
		if err := c.walk(t.Key(), path+"[key]"); err != nil {
			return err
		}
		if err := c.walk(t.Elem(), path+"[value]"); err != nil {
			return err
		}
		// A map entry costs about twice its key and value in the table, plus what
		// they point to.
		unit(path+"[entry]", 2*int64(t.Key().Size()+t.Elem().Size())+16+c.cost[t.Key()]+c.cost[t.Elem()], 2)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if err := c.walk(f.Type, path+"."+f.Name); err != nil {
				return err
			}
			own += c.cost[f.Type]
		}
	}
	c.cost[t] = own
	return nil
}
