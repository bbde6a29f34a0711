package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// The batch scripts (swapManyScript, setAndDeleteManyScript) apply, key after key,
// what the single-key scripts do. These tests are differential: the same records
// are laid out in two namespaces, the batch runs on one and the single-key calls,
// in the same order, on the other, and the answers, the records left (bytes and
// expiry) and the wake-ups published on each key's channel must be the same.

// twin is a pair of namespaces holding the same records, for one store.
type twin struct {
	t     *testing.T
	s     *Store
	ctx   context.Context
	batch string // namespace of the batch
	each  string // namespace of the single-key calls
	ids   []string
	sub   *redis.PubSub
	msgs  <-chan *redis.Message
}

const twinMark = "twin-marker"

func newTwin(t *testing.T, s *Store, ids []string) *twin {
	ns := storetest.Namespace(t)
	w := &twin{t: t, s: s, ctx: context.Background(), batch: ns + "-batch", each: ns + "-each", ids: ids}
	t.Cleanup(func() {
		for _, ns := range []string{w.batch, w.each} {
			for _, k := range w.all(ns) {
				_ = s.client.Del(w.ctx, s.keys.name(k)).Err()
			}
		}
	})
	return w
}

// all returns every record of ns the test touches: per id, the entry, its lease
// record and a counter.
func (w *twin) all(ns string) []store.Key {
	var ks []store.Key
	for _, id := range w.ids {
		ks = append(ks, w.entry(ns, id), w.lease(ns, id), w.counter(ns, id))
	}
	return ks
}

func (w *twin) entry(ns, id string) store.Key { return store.Key{Namespace: ns, ID: id} }
func (w *twin) lease(ns, id string) store.Key {
	return store.Key{Namespace: store.InternalPrefix + ns, ID: id}
}
func (w *twin) counter(ns, id string) store.Key {
	return store.Key{Namespace: store.InternalPrefix, ID: ns + "/" + id}
}

// both runs set on each namespace.
func (w *twin) both(set func(ns string)) {
	set(w.batch)
	set(w.each)
}

// raw stores v, bytes that are no record, under k.
func (w *twin) raw(k store.Key, v string) {
	w.t.Helper()
	if err := w.s.client.Set(w.ctx, w.s.keys.name(k), v, 0).Err(); err != nil {
		w.t.Fatal(err)
	}
}

// put stores e under k as Set does.
func (w *twin) put(k store.Key, e store.Entry) {
	w.t.Helper()
	if err := w.s.Set(w.ctx, k, e); err != nil {
		w.t.Fatal(err)
	}
}

// listen subscribes to the channel of every id in both namespaces.
func (w *twin) listen() {
	w.t.Helper()
	chans := []string{twinMark}
	for _, ns := range []string{w.batch, w.each} {
		for _, id := range w.ids {
			chans = append(chans, w.s.keys.channel(w.entry(ns, id)))
		}
	}
	w.sub = w.s.client.Subscribe(w.ctx, chans...)
	w.t.Cleanup(func() { _ = w.sub.Close() })
	for range chans { // every subscription is in place
		if _, err := w.sub.Receive(w.ctx); err != nil {
			w.t.Fatal(err)
		}
	}
	w.msgs = w.sub.Channel(redis.WithChannelSize(10_000))
}

// wakes returns the wake-ups published since listen (or the last wakes), per
// namespace and id: it publishes a marker, which one server delivers after every
// message published before it.
func (w *twin) wakes() map[string]int {
	w.t.Helper()
	if err := w.s.client.Publish(w.ctx, twinMark, "m").Err(); err != nil {
		w.t.Fatal(err)
	}
	got := map[string]int{}
	for {
		select {
		case m := <-w.msgs:
			if m.Channel == twinMark {
				return got
			}
			got[m.Channel+" "+m.Payload]++
		case <-time.After(eventually):
			w.t.Fatal("no marker on the subscription")
			return nil
		}
	}
}

// compare fails unless both namespaces hold the same records, with the same kind
// of expiry, and their ids had the same wake-ups.
func (w *twin) compare() {
	w.t.Helper()
	wakes := w.wakes()
	for _, id := range w.ids {
		b, e := w.entry(w.batch, id), w.entry(w.each, id)
		bw := wakes[w.s.keys.channel(b)+" v"]
		ew := wakes[w.s.keys.channel(e)+" v"]
		if bw != ew {
			w.t.Errorf("%s: %d wake-ups after the batch, %d after the single calls", id, bw, ew)
		}
	}
	ball, eall := w.all(w.batch), w.all(w.each)
	for i := range ball {
		bv, bt := w.state(ball[i])
		ev, et := w.state(eall[i])
		if bv != ev || bt != et {
			w.t.Errorf("%s after the batch: %q (%s); after the single calls: %q (%s)", ball[i], bv, bt, ev, et)
		}
	}
}

// state is k's raw record and its kind of expiry.
func (w *twin) state(k store.Key) (string, string) {
	w.t.Helper()
	name := w.s.keys.name(k)
	v, err := w.s.client.Get(w.ctx, name).Result()
	if errors.Is(err, redis.Nil) {
		return "", "absent"
	}
	if err != nil {
		w.t.Fatal(err)
	}
	ttl, err := w.s.client.PTTL(w.ctx, name).Result()
	if err != nil {
		w.t.Fatal(err)
	}
	if ttl < 0 {
		return v, "no expiry"
	}
	return v, "expires"
}

var twinAt = time.UnixMilli(1_700_000_000_000)

func twinEntry(v string) *store.Entry { return &store.Entry{Value: []byte(v), StoredAt: twinAt} }

// swapCase is one swap of a batch: the record id starts as, and the swap.
type swapCase struct {
	id   string
	seed func(w *twin, k store.Key) // nil: no record
	old  []byte
	next *store.Entry
}

func seedValue(v string) func(w *twin, k store.Key) {
	return func(w *twin, k store.Key) { w.put(k, *twinEntry(v)) }
}

func seedRaw(v string) func(w *twin, k store.Key) {
	return func(w *twin, k store.Key) { w.raw(k, v) }
}

// TestSwapManyIsSwapPerKey: SwapMany on one server (one script for the batch)
// answers, writes and wakes as Swap called for each key in turn: creation from
// absent, compare-and-swap, delete, an unparsable record as none, an empty value as
// an entry (not as none), expiry set and taken off, a key repeated in the batch, and
// a batch of more keys than one script takes.
func TestSwapManyIsSwapPerKey(t *testing.T) {
	s := newSingle(t)
	exp := twinEntry("expiring")
	exp.ExpiresAt = time.Now().Add(time.Hour)
	cases := []swapCase{
		{"absent-create", nil, nil, twinEntry("n")},
		{"present-create", seedValue("x"), nil, twinEntry("n")},
		{"present-cas", seedValue("x"), []byte("x"), twinEntry("n")},
		{"present-wrong", seedValue("x"), []byte("y"), twinEntry("n")},
		{"present-delete", seedValue("x"), []byte("x"), nil},
		{"absent-delete", nil, nil, nil},
		{"garbage-create", seedRaw("garbage"), nil, twinEntry("n")},
		{"garbage-cas", seedRaw("garbage"), []byte("garbage"), twinEntry("n")},
		{"empty-create", seedValue(""), nil, twinEntry("n")},
		{"empty-cas", seedValue(""), []byte{}, twinEntry("n")},
		{"absent-cas-empty", nil, []byte{}, twinEntry("n")},
		{"absent-expiry", nil, nil, exp},
		{"expiry-off", func(w *twin, k store.Key) { w.put(k, *exp) }, []byte("expiring"), twinEntry("n")},
		{"dup", nil, nil, twinEntry("d1")},
		{"dup", nil, nil, twinEntry("d2")},
		{"dup", nil, []byte("d1"), twinEntry("d3")},
		{"dup", nil, []byte("d3"), nil},
		{"dup", nil, []byte("d3"), twinEntry("d4")},
	}
	runSwapTwin(t, s, cases, []bool{true, false, true, false, true, true, true, false, false, true, false, true, true, true, false, true, true, false})

	// More keys than one script takes: the answers of the second script land on its
	// own keys.
	var many []swapCase
	for i := range maxBatchScriptKeys + 5 {
		c := swapCase{id: fmt.Sprintf("m%04d", i), next: twinEntry(fmt.Sprint(i))}
		if i%3 == 0 {
			c.seed = seedValue("x")
		}
		if i%3 == 1 {
			c.seed, c.old = seedValue("x"), []byte("x")
		}
		many = append(many, c)
	}
	runSwapTwin(t, s, many, nil)
}

// runSwapTwin lays out the records of cases twice, runs SwapMany on one copy and Swap
// key by key on the other, and compares; want, if not nil, is what each reports.
func runSwapTwin(t *testing.T, s *Store, cases []swapCase, want []bool) {
	t.Helper()
	var ids []string
	for _, c := range cases {
		if !slices.Contains(ids, c.id) {
			ids = append(ids, c.id)
		}
	}
	w := newTwin(t, s, ids)
	seeded := map[string]bool{}
	for _, c := range cases {
		if c.seed != nil && !seeded[c.id] {
			seeded[c.id] = true
			w.both(func(ns string) { c.seed(w, w.entry(ns, c.id)) })
		}
	}
	w.listen()
	ks, olds, nexts := make([]store.Key, len(cases)), make([][]byte, len(cases)), make([]*store.Entry, len(cases))
	for i, c := range cases {
		ks[i], olds[i], nexts[i] = w.entry(w.batch, c.id), c.old, c.next
	}
	got, err := s.SwapMany(w.ctx, ks, olds, nexts)
	if err != nil || len(got) != len(cases) {
		t.Fatalf("SwapMany = %d answers, %v", len(got), err)
	}
	each := make([]bool, len(cases))
	for i, c := range cases {
		if each[i], err = s.Swap(w.ctx, w.entry(w.each, c.id), c.old, c.next); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, each) {
		t.Errorf("SwapMany = %v; Swap key by key = %v", got, each)
	}
	if want != nil && !slices.Equal(each, want) {
		t.Errorf("Swap key by key = %v, want %v", each, want)
	}
	w.compare()
}

// writeCase is one write of a SetAndDelete batch: the entry's record and the lease
// record id starts with, and the write.
type writeCase struct {
	id        string
	seedEntry func(w *twin, k store.Key)
	seedLease func(w *twin, k store.Key)
	e         *store.Entry
	old       []byte
}

// TestSetAndDeleteManyIsSetAndDeletePerKey: SetAndDeleteManySwap on one server (one
// script for the batch) answers, writes and wakes as SetAndDelete called for each key
// in turn, the last reading the counters, followed by Swap for each mark: the lease
// record deleted only when it holds the old value (an empty one included, never for
// a nil one, an unparsable record never), an entry over the size limit failing alone,
// expiry, a key repeated, a counter that is a lease the batch deletes read as
// missing; and the marks swapped after the writes. A batch of more writes than one
// script takes reads the counters and swaps the marks after all of them.
func TestSetAndDeleteManyIsSetAndDeletePerKey(t *testing.T) {
	d, err := New(singleClient(t), &Options{Prefix: "cachier-scripts", MaxValueSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	s := d.(*Store)
	exp := twinEntry("expiring")
	exp.ExpiresAt = time.Now().Add(time.Hour)
	cases := []writeCase{
		{"held", nil, seedValue("L"), twinEntry("a"), []byte("L")},
		{"renewed", seedValue("old"), seedValue("L2"), twinEntry("b"), []byte("L")},
		{"no-old", nil, seedValue("L"), twinEntry("c"), nil},
		{"no-lease", nil, nil, twinEntry("d"), []byte("L")},
		{"garbage-lease", nil, seedRaw("garbage"), twinEntry("e"), []byte("garbage")},
		{"empty-lease", nil, seedValue(""), twinEntry("f"), []byte{}},
		{"empty-lease-nil", nil, seedValue(""), twinEntry("g"), nil},
		{"too-large", seedValue("kept"), seedValue("L"), twinEntry(strings.Repeat("x", 65)), []byte("L")},
		{"expiring", seedValue("old"), nil, exp, nil},
		{"expiry-off", func(w *twin, k store.Key) { w.put(k, *exp) }, nil, twinEntry("h"), nil},
		{"held", nil, nil, twinEntry("a2"), []byte("L")},
		{"empty-value", nil, seedValue("L"), twinEntry(""), []byte("L")},
	}
	alsoOf := func(w *twin, ns string) []store.Key {
		return []store.Key{w.counter(ns, "held"), w.counter(ns, "no-lease"), w.lease(ns, "held"), w.lease(ns, "renewed"), w.lease(ns, "empty-lease")}
	}
	marks := []writeCase{
		{"mark-absent", nil, nil, twinEntry("m1"), nil},
		{"mark-wrong", seedValue("x"), nil, twinEntry("m2"), []byte("y")},
		{"mark-cas", seedValue("x"), nil, twinEntry("m3"), []byte("x")},
		{"mark-absent-empty", nil, nil, twinEntry("m4"), []byte{}},
		{"held", nil, nil, twinEntry("m5"), []byte("a2")}, // after the writes
	}
	seedCounters := func(w *twin) {
		w.both(func(ns string) { w.put(w.counter(ns, "held"), *twinEntry("\x00\x00\x00\x00\x00\x00\x00\x05")) })
	}
	runWriteTwin(t, s, cases, marks, alsoOf, seedCounters)

	// More writes than one script takes.
	var many []writeCase
	for i := range maxBatchScriptKeys + 5 {
		c := writeCase{id: fmt.Sprintf("w%04d", i), e: twinEntry(fmt.Sprint(i)), old: []byte("L")}
		if i%2 == 0 {
			c.seedLease = seedValue("L")
		}
		many = append(many, c)
	}
	alsoMany := func(w *twin, ns string) []store.Key {
		return []store.Key{w.lease(ns, "w0000"), w.lease(ns, "w0001"), w.entry(ns, fmt.Sprintf("w%04d", maxBatchScriptKeys+4))}
	}
	runWriteTwin(t, s, many, []writeCase{{"w0000", nil, nil, twinEntry("m"), []byte(fmt.Sprint(0))}}, alsoMany, nil)
}

// runWriteTwin lays out the records of writes and marks twice, runs
// SetAndDeleteManySwap on one copy and SetAndDelete then Swap key by key on the
// other, and compares.
func runWriteTwin(t *testing.T, s *Store, writes, marks []writeCase, alsoOf func(w *twin, ns string) []store.Key, seed func(w *twin)) {
	t.Helper()
	var ids []string
	for _, c := range append(slices.Clone(writes), marks...) {
		if !slices.Contains(ids, c.id) {
			ids = append(ids, c.id)
		}
	}
	w := newTwin(t, s, ids)
	seeded := map[string]bool{}
	for _, c := range append(slices.Clone(writes), marks...) {
		if seeded[c.id] {
			continue
		}
		seeded[c.id] = true
		if c.seedEntry != nil {
			w.both(func(ns string) { c.seedEntry(w, w.entry(ns, c.id)) })
		}
		if c.seedLease != nil {
			w.both(func(ns string) { c.seedLease(w, w.lease(ns, c.id)) })
		}
	}
	if seed != nil {
		seed(w)
	}
	w.listen()
	n := len(writes)
	ks, es, rks, olds := make([]store.Key, n), make([]store.Entry, n), make([]store.Key, n), make([][]byte, n)
	for i, c := range writes {
		ks[i], es[i], rks[i], olds[i] = w.entry(w.batch, c.id), *c.e, w.lease(w.batch, c.id), c.old
	}
	sks, solds, ses := make([]store.Key, len(marks)), make([][]byte, len(marks)), make([]store.Entry, len(marks))
	for j, m := range marks {
		sks[j], solds[j], ses[j] = w.entry(w.batch, m.id), m.old, *m.e
	}
	deleted, errs, vals, swapped, err := s.SetAndDeleteManySwap(w.ctx, ks, es, rks, olds, alsoOf(w, w.batch), sks, solds, ses)
	if err != nil || len(deleted) != n || len(errs) != n || len(swapped) != len(marks) {
		t.Fatalf("SetAndDeleteManySwap = %d deleted, %d errors, %d swapped, %v", len(deleted), len(errs), len(swapped), err)
	}
	// Key by key: the last write that is sent reads the counters.
	last := -1
	for i, c := range writes {
		if s.checkSize(ks[i], *c.e) == nil {
			last = i
		}
	}
	var eachVals [][]byte
	for i, c := range writes {
		var also []store.Key
		if i == last {
			also = alsoOf(w, w.each)
		}
		del, vs, err := s.SetAndDelete(w.ctx, w.entry(w.each, c.id), *c.e, w.lease(w.each, c.id), c.old, also)
		if errors.Is(err, store.ErrTooLarge) != errors.Is(errs[i], store.ErrTooLarge) || (err == nil) != (errs[i] == nil) {
			t.Errorf("write %d (%s): error %v in the batch, %v alone", i, c.id, errs[i], err)
		}
		if err != nil {
			continue
		}
		if del != deleted[i] {
			t.Errorf("write %d (%s): deleted %v in the batch, %v alone", i, c.id, deleted[i], del)
		}
		if i == last {
			eachVals = vs
		}
	}
	if !slices.EqualFunc(vals, eachVals, func(a, b []byte) bool { return (a == nil) == (b == nil) && string(a) == string(b) }) {
		t.Errorf("counters read by the batch %q, by the last write %q", vals, eachVals)
	}
	for j, m := range marks {
		ok, err := s.Swap(w.ctx, w.entry(w.each, m.id), m.old, m.e)
		if err != nil {
			t.Fatal(err)
		}
		if ok != swapped[j] {
			t.Errorf("mark %d (%s): swapped %v in the batch, %v alone", j, m.id, swapped[j], ok)
		}
	}
	w.compare()
}

// The misses of one batched read share an allocation; each still names its own key.
func TestGetManyMissesNameTheirKeys(t *testing.T) {
	s := newSingle(t)
	ns := storetest.Namespace(t)
	ks := []store.Key{{Namespace: ns, ID: "a"}, {Namespace: ns, ID: "present"}, {Namespace: ns, ID: "b"}}
	if err := s.Set(context.Background(), ks[1], store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Delete(context.Background(), ks[1]) })
	_, errs, err := s.GetMany(context.Background(), ks)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		if !errors.Is(errs[i], store.ErrNotFound) || !strings.Contains(errs[i].Error(), ks[i].String()) {
			t.Errorf("miss %d: %v; want ErrNotFound naming %s", i, errs[i], ks[i])
		}
	}
	if errs[1] != nil {
		t.Errorf("hit: %v", errs[1])
	}
}
