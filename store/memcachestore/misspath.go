package memcachestore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/cachier-go/cachier/store"
)

// maxRemembered bounds the maps of the write path; past it they start over (what is
// forgotten costs a round trip, nothing else).
const maxRemembered = 4096

// casRecord is a lease record as read right after this Store created it: its CAS
// and its value. While the item's CAS is still cas, the item holds value, so
// SetAndDelete can delete it with one conditional md (or cas) in the round trip of
// its write.
type casRecord struct {
	cas   uint64
	value []byte
}

// sawGen records the generation counter gk as just read (nil: missing).
func (s *Store) sawGen(gk string, v []byte) {
	g, ok := parseGen(v)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !ok {
		delete(s.wgens, gk)
		return
	}
	if len(s.wgens) >= maxRemembered {
		clear(s.wgens)
	}
	s.wgens[gk] = g
}

// writeGen returns the generation to write records of gk's namespace under: the
// counter as this Store last read it, or read (or created) now. A counter that has
// moved since it was read makes the record written under it a miss, never a wrong
// answer; the writers look again in the round trip of the write.
func (s *Store) writeGen(ctx context.Context, gk string) (uint64, error) {
	s.wmu.Lock()
	g, ok := s.wgens[gk]
	s.wmu.Unlock()
	if ok {
		return g, nil
	}
	g, err := s.generation(ctx, gk)
	if err != nil {
		return 0, err
	}
	s.sawGen(gk, strconv.AppendUint(nil, g, 10))
	return g, nil
}

func (s *Store) rememberCAS(key string, r casRecord) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if len(s.cass) >= maxRemembered {
		clear(s.cass)
	}
	s.cass[key] = r
}

// takeCAS returns and forgets what rememberCAS kept for key.
func (s *Store) takeCAS(key string) (casRecord, bool) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	r, ok := s.cass[key]
	delete(s.cass, key)
	return r, ok
}

func (s *Store) forgetCAS(key string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	delete(s.cass, key)
}

// addOnce appends key to keys unless it is there already: the generation counters a
// batch reads, each once.
func addOnce(keys []string, key string) []string {
	if slices.Contains(keys, key) {
		return keys
	}
	return append(keys, key)
}

// valueOf returns the value of the item key as read by ops (nil: missing).
func valueOf(ops []op, key string) []byte {
	for i := range ops {
		if ops[i].verb == 'g' && ops[i].key == key {
			return ops[i].value
		}
	}
	return nil
}

// recordValue returns the value of k's record ev (nil: missing) read with its
// namespace's counter gv: nil when the record is missing or from an older
// generation, the raw bytes when it does not decode (they are no counter record).
func recordValue(k store.Key, gv, ev []byte) []byte {
	gen, ok := parseGen(gv)
	if !ok || ev == nil {
		return nil
	}
	e, rgen, err := decodeFor(k, ev)
	switch {
	case err != nil:
		return ev
	case rgen != gen:
		return nil
	}
	return nonNil(e.Value)
}

// tooLarge refuses, before it is sent, a value that would make k's item (named ek)
// larger than the server takes.
func (s *Store) tooLarge(k store.Key, ek string, v []byte) error {
	if n := len(ek) + entrySize(k.Namespace, k.ID, v) + itemOverhead; n > s.maxItemSize {
		return fmt.Errorf("%w: %s: value of %d bytes does not fit memcached's item limit of %d bytes (at most %d)",
			store.ErrTooLarge, k, len(v), s.maxItemSize, s.MaxValueSize(k))
	}
	return nil
}

// GetAndCreate implements store.ReadOrAcquirer: the counters, the entry, the
// records of also, memcached add of the lease record rk and a read of rk, in one
// batch (one round trip with Options.Addr). add is atomic on the server, so of any
// number of concurrent creators exactly one creates the record. The record is
// written under the lease namespace's counter as this Store last read it; if the
// batch finds that counter moved (a Clear of the leases), the lease is taken again
// over Swap.
func (s *Store) GetAndCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	var res store.GetAndCreateResult
	gk, ek := s.genKey(k.Namespace), s.itemKey(k)
	lgk, rik := s.genKey(rk.Namespace), s.itemKey(rk)
	if err := s.tooLarge(rk, rik, rec.Value); err != nil {
		return res, err
	}
	lg, err := s.writeGen(ctx, lgk)
	if err != nil {
		return res, err
	}
	gks := []string{gk}
	gks = addOnce(gks, lgk)
	for _, a := range also {
		gks = addOnce(gks, s.genKey(a.Namespace))
	}
	ops := make([]op, 0, len(gks)+len(also)+3)
	for _, key := range gks {
		ops = append(ops, op{verb: 'g', key: key})
	}
	ops = append(ops, op{verb: 'g', key: ek})
	for _, a := range also {
		ops = append(ops, op{verb: 'g', key: s.itemKey(a)})
	}
	ai := len(ops)
	ops = append(ops,
		op{verb: 'a', key: rik, exp: entryExpiration(rec.ExpiresAt, s.now()),
			val: appendEntryExp(nil, lg, rec.StoredAt, rec.ExpiresAt, rk.Namespace, rk.ID, rec.Value)},
		op{verb: 'g', key: rik})
	clears := s.clearCount()
	if err := s.run(ctx, ops); err != nil {
		return res, err
	}
	for i := range gks {
		s.sawGen(ops[i].key, ops[i].value)
	}
	n := len(gks)
	res.Entry, res.GetErr = s.entryFrom(k, gk, ops[0].value, ops[n].value, clears)
	if res.GetErr != nil {
		res.Entry = store.Entry{}
	}
	res.Also = make([][]byte, len(also))
	for i, a := range also {
		res.Also[i] = recordValue(a, valueOf(ops[:n], s.genKey(a.Namespace)), ops[n+1+i].value)
	}
	add, cur := ops[ai], ops[ai+1]
	if add.err != nil {
		return res, fmt.Errorf("%w: %s: %w", store.ErrTooLarge, rk, add.err)
	}
	if now, ok := parseGen(valueOf(ops[:n], lgk)); !ok || now != lg {
		// The record was (or would have been) written under a counter that has
		// moved: no record to anyone. Take the lease over Swap, which reads the
		// counter afresh.
		res.Created, err = s.Swap(ctx, rk, nil, &rec)
		if err != nil {
			return res, err
		}
		res.Cur = rec.Value
		if !res.Created {
			res.Cur = nil
			if e, err := s.Get(ctx, rk); err == nil {
				res.Cur = nonNil(e.Value)
			}
		}
		return res, nil
	}
	res.Created = add.ok
	if cur.found {
		res.Cur = recordValue(rk, valueOf(ops[:n], lgk), cur.value)
		if res.Created && bytes.Equal(res.Cur, rec.Value) {
			s.rememberCAS(rik, casRecord{cas: cur.gotCA, value: rec.Value})
		}
	}
	if res.Created {
		res.Cur = rec.Value
	}
	return res, nil
}

// SetAndDelete implements store.WriteAndReleaser: the write of e, the delete of rk
// if it still holds old, and the reads of the counters and also, in one batch (one
// round trip with Options.Addr) when rk is a lease record this Store created and
// read back (GetAndCreate): its CAS makes the delete conditional. Otherwise the
// batch reads rk with its CAS, and a second round trip deletes it if it holds old.
// e is written under its namespace's counter as this Store last read it; if the
// batch finds the counter moved, e is written again under the new one (Set).
func (s *Store) SetAndDelete(ctx context.Context, k store.Key, e store.Entry, rk store.Key, old []byte, also []store.Key) (bool, [][]byte, error) {
	gk, ek := s.genKey(k.Namespace), s.itemKey(k)
	lgk, rik := s.genKey(rk.Namespace), s.itemKey(rk)
	if err := s.tooLarge(k, ek, e.Value); err != nil {
		return false, nil, err
	}
	gen, err := s.writeGen(ctx, gk)
	if err != nil {
		return false, nil, err
	}
	rec := appendEntryExp(make([]byte, 0, entrySize(k.Namespace, k.ID, e.Value)+8), gen, e.StoredAt, e.ExpiresAt, k.Namespace, k.ID, e.Value)
	ops := make([]op, 0, 6+2*len(also))
	ops = append(ops, op{verb: 's', key: ek, val: rec, exp: entryExpiration(e.ExpiresAt, s.now())})
	remembered, ok := s.takeCAS(rik)
	byCAS := ok && bytes.Equal(remembered.value, old)
	gks := []string{gk}
	if byCAS {
		ops = append(ops, op{verb: 'd', key: rik, cas: remembered.cas})
	} else {
		gks = addOnce(gks, lgk)
	}
	for _, a := range also {
		gks = addOnce(gks, s.genKey(a.Namespace))
	}
	gi := len(ops)
	for _, key := range gks {
		ops = append(ops, op{verb: 'g', key: key})
	}
	ri := len(ops)
	if !byCAS {
		ops = append(ops, op{verb: 'g', key: rik})
	}
	ai := len(ops)
	for _, a := range also {
		ops = append(ops, op{verb: 'g', key: s.itemKey(a)})
	}
	if err := s.run(ctx, ops); err != nil {
		return false, nil, err
	}
	set := ops[0]
	switch {
	case set.err != nil:
		return false, nil, fmt.Errorf("%w: %s: %w", store.ErrTooLarge, k, set.err)
	case !set.ok:
		return false, nil, fmt.Errorf("memcachestore: set of %s not stored", k)
	}
	gops := ops[gi:ri]
	for _, o := range gops {
		s.sawGen(o.key, o.value)
	}
	vals := make([][]byte, len(also))
	for i, a := range also {
		vals[i] = recordValue(a, valueOf(gops, s.genKey(a.Namespace)), ops[ai+i].value)
	}
	deleted := false
	if byCAS {
		deleted = ops[1].ok
	} else if r := ops[ri]; r.found && bytes.Equal(recordValue(rk, valueOf(gops, lgk), r.value), old) {
		del := []op{{verb: 'd', key: rik, cas: r.gotCA}}
		if err := s.run(ctx, del); err != nil {
			return false, nil, err
		}
		deleted = del[0].ok
	}
	if now, ok := parseGen(valueOf(gops, gk)); !ok || now != gen {
		// Written under a counter that has moved: write it again under the new one.
		if err := s.Set(ctx, k, e); err != nil {
			return deleted, nil, err
		}
	}
	return deleted, vals, nil
}
