package cachier

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// DecodeExpansion bounds what a hit may allocate while it decodes a CBOR entry: at
// most DecodeExpansion bytes per byte of the entry, plus decodeAllowance. Lengths in
// an entry are checked against the bytes present, but each byte can still stand for
// an element that is much larger in memory (an empty map for a 1 KiB struct): before
// decoding, a scan of the entry against the result type adds up what decoding would
// allocate, and an entry over the bound is treated as corrupt (a miss, counted in
// Stats.DecodeErrors) instead of being decoded. Ordinary data stays far below it
// (a []int or map[string]int costs at most about 24 bytes per encoded byte).
const DecodeExpansion = 64

// decodeAllowance is what any entry may allocate, however small.
const decodeAllowance = 1 << 20

// errTooExpensive reports an entry whose decoding would allocate more than the bound.
var errTooExpensive = errors.New("decoding would allocate more than DecodeExpansion times the entry's size")

// checkCBORBudget scans a CBOR payload against the type it will be decoded into and
// returns an error if decoding it would allocate more than the bound.
func checkCBORBudget(payload []byte, t reflect.Type) error {
	s := cborScan{b: payload, budget: max(int64(DecodeExpansion)*int64(len(payload)), decodeAllowance)}
	if err := s.item(t, 0); err != nil {
		return err
	}
	return nil
}

type cborScan struct {
	b      []byte
	pos    int
	alloc  int64
	budget int64
}

var errCBORShape = errors.New("malformed CBOR")

func (s *cborScan) charge(n int64) error {
	if n < 0 || s.alloc+n > s.budget || s.alloc+n < s.alloc {
		return fmt.Errorf("%w (%d bytes of entry)", errTooExpensive, len(s.b))
	}
	s.alloc += n
	return nil
}

// head reads an item's major type and argument; indef reports an indefinite length.
func (s *cborScan) head() (major byte, arg uint64, indef bool, err error) {
	if s.pos >= len(s.b) {
		return 0, 0, false, errCBORShape
	}
	h := s.b[s.pos]
	s.pos++
	major, ai := h>>5, h&0x1f
	switch {
	case ai < 24:
		return major, uint64(ai), false, nil
	case ai == 31:
		return major, 0, true, nil
	case ai > 27:
		return 0, 0, false, errCBORShape
	}
	n := 1 << (ai - 24)
	if s.pos+n > len(s.b) {
		return 0, 0, false, errCBORShape
	}
	for _, c := range s.b[s.pos : s.pos+n] {
		arg = arg<<8 | uint64(c)
	}
	s.pos += n
	return major, arg, false, nil
}

func (s *cborScan) isBreak() bool { return s.pos < len(s.b) && s.b[s.pos] == 0xff }

var (
	cborUnmarshalerT = reflect.TypeFor[cbor.Unmarshaler]()
	binUnmarshalerT  = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	txtUnmarshalerT  = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// opaque reports a type that decodes itself: it is charged for the bytes of its item.
func opaque(t reflect.Type) bool {
	for _, m := range []reflect.Type{cborUnmarshalerT, binUnmarshalerT, txtUnmarshalerT} {
		if reflect.PointerTo(t).Implements(m) {
			return true
		}
	}
	return false
}

// item scans one data item decoded into t (nil: skipped by the decoder).
func (s *cborScan) item(t reflect.Type, depth int) error {
	if depth > 256 {
		return errCBORShape
	}
	for t != nil && t.Kind() == reflect.Pointer {
		if s.pos < len(s.b) && (s.b[s.pos] == 0xf6 || s.b[s.pos] == 0xf7) {
			t = nil // null: no allocation
			break
		}
		if err := s.charge(int64(t.Elem().Size())); err != nil {
			return err
		}
		t = t.Elem()
	}
	if t != nil && opaque(t) {
		start := s.pos
		if err := s.item(nil, depth); err != nil {
			return err
		}
		return s.charge(2 * int64(s.pos-start))
	}
	major, arg, indef, err := s.head()
	if err != nil {
		return err
	}
	switch major {
	case 0, 1, 7:
		return nil
	case 2, 3:
		if indef {
			for !s.isBreak() {
				if err := s.item(t, depth+1); err != nil {
					return err
				}
			}
			s.pos++
			return nil
		}
		if arg > uint64(len(s.b)-s.pos) {
			return errCBORShape
		}
		s.pos += int(arg)
		if t != nil {
			return s.charge(int64(arg))
		}
		return nil
	case 6:
		return s.item(t, depth+1)
	case 4:
		var elem reflect.Type
		var fields []reflect.Type
		if t != nil {
			switch t.Kind() {
			case reflect.Slice, reflect.Array:
				elem = t.Elem()
			case reflect.Struct:
				fields = structFields(t).byIndex
			}
		}
		for i := 0; indef || uint64(i) < arg; i++ {
			if indef && s.isBreak() {
				s.pos++
				break
			}
			et := elem
			if fields != nil {
				et = nil
				if i < len(fields) {
					et = fields[i]
				}
			}
			if t != nil && t.Kind() == reflect.Slice {
				if err := s.charge(int64(elem.Size())); err != nil {
					return err
				}
			}
			if err := s.item(et, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 5:
		var kt, vt reflect.Type
		var sf *fieldIndex
		if t != nil {
			switch t.Kind() {
			case reflect.Map:
				kt, vt = t.Key(), t.Elem()
			case reflect.Struct:
				sf = structFields(t)
			}
		}
		for i := 0; indef || uint64(i) < arg; i++ {
			if indef && s.isBreak() {
				s.pos++
				break
			}
			if sf != nil {
				start := s.pos
				if err := s.item(nil, depth+1); err != nil {
					return err
				}
				if err := s.item(sf.lookup(s.b[start:s.pos]), depth+1); err != nil {
					return err
				}
				continue
			}
			if kt != nil {
				if err := s.charge(2*int64(kt.Size()+vt.Size()) + 16); err != nil {
					return err
				}
			}
			if err := s.item(kt, depth+1); err != nil {
				return err
			}
			if err := s.item(vt, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return errCBORShape
}

// fieldIndex finds the type a struct field of an encoded key decodes into.
type fieldIndex struct {
	byName  map[string]reflect.Type // exact and lower-cased names
	byInt   map[int64]reflect.Type  // keyasint
	byIndex []reflect.Type          // toarray
	widest  reflect.Type            // for keys that match nothing known: assume the worst
}

var fieldIndexes sync.Map // reflect.Type -> *fieldIndex

func structFields(t reflect.Type) *fieldIndex {
	if fi, ok := fieldIndexes.Load(t); ok {
		return fi.(*fieldIndex)
	}
	fi := &fieldIndex{byName: map[string]reflect.Type{}, byInt: map[int64]reflect.Type{}}
	var add func(t reflect.Type, depth int)
	add = func(t reflect.Type, depth int) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && depth < 8 {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct && f.Tag.Get("cbor") == "" && f.Tag.Get("json") == "" {
					add(ft, depth+1)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			name := f.Name
			tag := f.Tag.Get("cbor")
			if tag == "" {
				tag = f.Tag.Get("json")
			}
			opts := ""
			if tag != "" {
				var n string
				n, opts, _ = strings.Cut(tag, ",")
				if n == "-" {
					continue
				}
				if n != "" {
					name = n
				}
			}
			if strings.Contains(opts, "keyasint") {
				var k int64
				if _, err := fmt.Sscan(name, &k); err == nil {
					fi.byInt[k] = f.Type
				}
			}
			fi.byName[name] = f.Type
			fi.byName[strings.ToLower(name)] = f.Type
			fi.byIndex = append(fi.byIndex, f.Type)
			if fi.widest == nil || f.Type.Size() > fi.widest.Size() {
				fi.widest = f.Type
			}
		}
	}
	add(t, 0)
	actual, _ := fieldIndexes.LoadOrStore(t, fi)
	return actual.(*fieldIndex)
}

// lookup returns the field type of an encoded key: a text string or an integer.
func (fi *fieldIndex) lookup(key []byte) reflect.Type {
	s := cborScan{b: key, budget: 1 << 62}
	major, arg, indef, err := s.head()
	if err != nil || indef {
		return fi.widest
	}
	switch major {
	case 3:
		if arg <= uint64(len(key)-s.pos) {
			name := string(key[s.pos : s.pos+int(arg)])
			if t, ok := fi.byName[name]; ok {
				return t
			}
			if t, ok := fi.byName[strings.ToLower(name)]; ok {
				return t
			}
			return nil // an unknown field is skipped
		}
	case 0:
		if t, ok := fi.byInt[int64(arg)]; ok {
			return t
		}
	case 1:
		if t, ok := fi.byInt[-1-int64(arg)]; ok {
			return t
		}
	}
	return fi.widest
}
