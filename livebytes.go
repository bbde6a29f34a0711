package cachier

import (
	"reflect"

	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/store"
)

// Bytes nobody reads.
//
// A process-local store that keeps decoded values (memstore) answers every hit from
// the value itself; its bytes are read only by what reads the entry as bytes: a
// Batch's read, package named, a Func of another codec, a direct Get. So a miss on it
// does not encode: save hands the value to store.LazyLiveStore.SetLazy with an
// Encoder that seals it the first time such a read asks (once per entry), and with an
// estimate of its size for the store's byte bound and listings (sizeOf: the value's
// size in memory, which is what a store of live values actually holds, rather than
// its encoded size). The trade-off: MaxBytes and Entries' sizes count that estimate
// for these entries, and a value that a built-in codec cannot encode (rare: Wrap
// checks the type) is cached in memory and reads as a corrupt entry (a miss) as bytes,
// where it used to be refused at the miss (ErrUncacheable, counted in DecodeErrors).
//
// The bytes are made at once, as before, whenever anything else needs them or their
// exact size: an entry with metadata (tags, prefixes, DependsOn, StaleAfterFunc, a nil
// result), EntrySizeLimit, a local tier, Verbose (it logs the size), a custom codec
// (its errors must reach the caller), and every store that is not process-local.

// liveEncoder seals a Func's results as seal does for an entry without metadata.
type liveEncoder[R any] struct {
	codec Codec
	id    envelope.Codec
	raw   rawKind
	// flatR is flat(R), worked out once: reflecting over R's fields on every miss
	// was about 3% of a memory miss.
	flatR bool
}

// Encode implements store.Encoder.
func (e *liveEncoder[R]) Encode(v any) ([]byte, error) {
	switch e.raw {
	case rawBytes:
		return envelope.Seal(envelope.Raw, envelope.Meta{}, v.([]byte)), nil
	case rawString:
		return envelope.Seal(envelope.Raw, envelope.Meta{}, []byte(v.(string))), nil
	}
	payload, err := e.codec.Marshal(v.(R))
	if err != nil {
		return nil, err
	}
	return envelope.Seal(e.id, envelope.Meta{}, payload), nil
}

// lazyTarget returns the store and encoder to keep v with unmade bytes, if it may be
// (see above).
func (f *Func[A, R]) lazyTarget(s *settings, v R, before []envelope.Dep) (store.LazyLiveStore, *liveEncoder[R], bool) {
	lz, ok := s.store.(store.LazyLiveStore)
	if !ok || len(before) > 0 || f.tags.hasMeta() || s.sizeLimit > 0 || s.verbose || !processLocal(s.store) || f.localOn(s) {
		return nil, nil, false
	}
	id := idOf(s.codec)
	if f.raw == notRaw && id == envelope.Custom {
		return nil, nil, false
	}
	if f.nillable && isNil(v) {
		return nil, nil, false
	}
	enc := f.liveEnc.Load()
	if enc == nil || enc.id != id {
		enc = &liveEncoder[R]{codec: s.codec, id: id, raw: f.raw, flatR: flat(reflect.TypeFor[R]())}
		f.liveEnc.Store(enc)
	}
	return lz, enc, true
}

// sizeOf estimates the memory v holds: its own size and what its strings, slices,
// maps and pointers reach, to a bounded depth (cycles and deep graphs are cut off)
// and sampling the first elements of long collections.
// v is the result boxed (as the store keeps it), so that estimating boxes nothing.
func sizeOf[R any](v any) int64 { return sizeOfFlat[R](v, flat(reflect.TypeFor[R]())) }

// sizeOfFlat is sizeOf for a caller that knows whether R is flat (a liveEncoder).
func sizeOfFlat[R any](v any, flatR bool) int64 {
	n := int64(reflect.TypeFor[R]().Size())
	if flatR {
		return n
	}
	return n + reached(reflect.ValueOf(v), 4)
}

// flat reports whether a value of t reaches no other memory.
func flat(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return false
	case reflect.Array:
		return flat(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !flat(t.Field(i).Type) {
				return false
			}
		}
	}
	return true
}

// sampled is how many elements of a collection reached tells its average size by.
const sampled = 8

// reached is the memory v reaches beyond its own size.
func reached(v reflect.Value, depth int) int64 {
	if depth == 0 {
		return 0
	}
	switch v.Kind() {
	case reflect.String:
		return int64(v.Len())
	case reflect.Slice:
		n := v.Len()
		if n == 0 {
			return 0
		}
		et := v.Type().Elem()
		total := int64(n) * int64(et.Size())
		if flat(et) {
			return total
		}
		var extra int64
		m := min(n, sampled)
		for i := range m {
			extra += reached(v.Index(i), depth-1)
		}
		return total + extra*int64(n)/int64(m)
	case reflect.Array:
		if flat(v.Type().Elem()) {
			return 0
		}
		var extra int64
		for i := range min(v.Len(), sampled) {
			extra += reached(v.Index(i), depth-1)
		}
		return extra
	case reflect.Map:
		n := v.Len()
		if n == 0 {
			return 0
		}
		kt, et := v.Type().Key(), v.Type().Elem()
		total := int64(n) * int64(kt.Size()+et.Size()+8) // and about a control byte and slack
		if flat(kt) && flat(et) {
			return total
		}
		var extra int64
		m := 0
		for it := v.MapRange(); it.Next() && m < sampled; m++ {
			extra += reached(it.Key(), depth-1) + reached(it.Value(), depth-1)
		}
		return total + extra*int64(n)/int64(max(m, 1))
	case reflect.Pointer:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		return int64(e.Type().Size()) + reached(e, depth-1)
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		return int64(e.Type().Size()) + reached(e, depth-1)
	case reflect.Struct:
		var extra int64
		for i := range v.NumField() {
			extra += reached(v.Field(i), depth)
		}
		return extra
	}
	return 0
}
