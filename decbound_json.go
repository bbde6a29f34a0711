package cachier

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
)

// checkJSONBudget scans a JSON payload against the type it will be decoded into and
// returns an error if decoding it would allocate more than DecodeExpansion times its
// size plus decodeAllowance. encoding/json grows slices and maps as it goes, so an
// element is charged three times its size.
func checkJSONBudget(payload []byte, t reflect.Type) error {
	s := jsonScan{cborScan: cborScan{b: payload, budget: max(int64(DecodeExpansion)*int64(len(payload)), decodeAllowance)}}
	return s.value(t, 0)
}

type jsonScan struct{ cborScan }

var (
	jsonUnmarshalerT = reflect.TypeFor[json.Unmarshaler]()
	jsonTextUnmarsh  = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (s *jsonScan) ws() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// str skips a string at s.pos and returns its raw contents.
func (s *jsonScan) str() ([]byte, error) {
	if s.pos >= len(s.b) || s.b[s.pos] != '"' {
		return nil, errCBORShape
	}
	start := s.pos + 1
	for i := start; i < len(s.b); i++ {
		switch s.b[i] {
		case '\\':
			i++
		case '"':
			s.pos = i + 1
			return s.b[start:i], nil
		}
	}
	return nil, errCBORShape
}

func (s *jsonScan) value(t reflect.Type, depth int) error {
	if depth > 10000 {
		return errCBORShape
	}
	s.ws()
	if s.pos >= len(s.b) {
		return errCBORShape
	}
	for t != nil && t.Kind() == reflect.Pointer {
		if s.b[s.pos] == 'n' {
			t = nil
			break
		}
		if err := s.charge(int64(t.Elem().Size())); err != nil {
			return err
		}
		t = t.Elem()
	}
	if t != nil && (reflect.PointerTo(t).Implements(jsonUnmarshalerT) || reflect.PointerTo(t).Implements(jsonTextUnmarsh)) {
		start := s.pos
		if err := s.value(nil, depth); err != nil {
			return err
		}
		return s.charge(2 * int64(s.pos-start))
	}
	switch c := s.b[s.pos]; c {
	case '"':
		raw, err := s.str()
		if err != nil {
			return err
		}
		if t != nil {
			return s.charge(int64(len(raw)))
		}
		return nil
	case '[':
		s.pos++
		var elem reflect.Type
		slice := false
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem, slice = t.Elem(), t.Kind() == reflect.Slice
		}
		for first := true; ; first = false {
			s.ws()
			if s.pos < len(s.b) && s.b[s.pos] == ']' {
				s.pos++
				return nil
			}
			if !first {
				if s.pos >= len(s.b) || s.b[s.pos] != ',' {
					return errCBORShape
				}
				s.pos++
			}
			if slice {
				if err := s.charge(3 * int64(elem.Size())); err != nil {
					return err
				}
			}
			if err := s.value(elem, depth+1); err != nil {
				return err
			}
		}
	case '{':
		s.pos++
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
		for first := true; ; first = false {
			s.ws()
			if s.pos < len(s.b) && s.b[s.pos] == '}' {
				s.pos++
				return nil
			}
			if !first {
				if s.pos >= len(s.b) || s.b[s.pos] != ',' {
					return errCBORShape
				}
				s.pos++
				s.ws()
			}
			key, err := s.str()
			if err != nil {
				return err
			}
			s.ws()
			if s.pos >= len(s.b) || s.b[s.pos] != ':' {
				return errCBORShape
			}
			s.pos++
			ft := vt
			switch {
			case sf != nil:
				ft = sf.byName[string(key)]
				if ft == nil {
					ft = sf.byName[strings.ToLower(string(key))]
				}
				if ft == nil && strings.ContainsRune(string(key), '\\') {
					ft = sf.widest // an escaped name: assume the worst field
				}
			case kt != nil:
				if err := s.charge(3*int64(kt.Size()+vt.Size()) + 32 + int64(len(key))); err != nil {
					return err
				}
			}
			if err := s.value(ft, depth+1); err != nil {
				return err
			}
		}
	default: // number, true, false, null
		for s.pos < len(s.b) {
			switch s.b[s.pos] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				return nil
			}
			s.pos++
		}
		return nil
	}
}
