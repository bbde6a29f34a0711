package redisstore

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// newSingle returns the driver on one server, with its records removed when t ends.
func newSingle(t *testing.T) *Store {
	t.Helper()
	d, err := New(singleClient(t), &Options{Prefix: "cachier-scripts"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	s, ok := d.(*Store)
	if !ok {
		t.Fatalf("New of a *redis.Client = %T, want *Store", d)
	}
	return s
}

func TestNewOffersScriptsOnOnePrimaryOnly(t *testing.T) {
	d, err := New(clusterClient(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(store.ReadOrAcquirer); ok {
		t.Errorf("%T on a cluster is a ReadOrAcquirer; its keys would span slots", d)
	}
	if _, ok := d.(store.WriteAndReleaser); ok {
		t.Errorf("%T on a cluster is a WriteAndReleaser; its keys would span slots", d)
	}
	if _, ok := d.(store.Swapper); !ok {
		t.Errorf("%T on a cluster is no Swapper", d)
	}
	var single store.Driver = newSingle(t)
	if _, ok := single.(store.ReadOrAcquirer); !ok {
		t.Errorf("%T is no ReadOrAcquirer", single)
	}
	if _, ok := single.(store.WriteAndReleaser); !ok {
		t.Errorf("%T is no WriteAndReleaser", single)
	}
}

// keys returns an entry key of a fresh namespace, its lease record and two counters.
func keys(t *testing.T, s *Store) (k, rk store.Key, also []store.Key) {
	ns := storetest.Namespace(t)
	k = store.Key{Namespace: ns, ID: "k"}
	rk = store.Key{Namespace: store.InternalPrefix + ns, ID: "k"}
	also = []store.Key{{Namespace: store.InternalPrefix, ID: ns + "/a"}, {Namespace: store.InternalPrefix, ID: ns + "/b"}}
	ctx := context.Background()
	t.Cleanup(func() {
		for _, x := range append([]store.Key{k, rk}, also...) {
			_ = s.Delete(ctx, x)
		}
	})
	return k, rk, also
}

func TestSwapScript(t *testing.T) {
	s := newSingle(t)
	ctx := context.Background()
	k, _, _ := keys(t, s)
	name := s.keys.name(k)
	e := func(v string) *store.Entry { return &store.Entry{Value: []byte(v), StoredAt: time.Now()} }
	swap := func(old []byte, next *store.Entry, want bool) {
		t.Helper()
		if ok, err := s.Swap(ctx, k, old, next); err != nil || ok != want {
			t.Fatalf("Swap(%q, %v) = %v, %v; want %v", old, next, ok, err, want)
		}
	}
	swap([]byte("a"), e("b"), false) // nothing to compare with
	swap(nil, e("a"), true)          // create
	swap(nil, e("b"), false)         // not absent
	swap([]byte("b"), e("c"), false) // not the value
	swap([]byte("a"), e(""), true)   // compare-and-swap, to an empty value
	swap(nil, e("x"), false)         // an empty value is still an entry
	swap([]byte{}, e("d"), true)
	swap([]byte("d"), nil, true) // delete
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after a deleting Swap = %v", err)
	}

	// ExpiresAt becomes the key's PXAT, as with Set; a swap without it takes it off.
	exp := e("x")
	exp.ExpiresAt = time.Now().Add(time.Hour)
	swap(nil, exp, true)
	if ttl, err := s.client.PTTL(ctx, name).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("PTTL after a Swap with ExpiresAt = %v, %v; want up to an hour", ttl, err)
	}
	if got, err := s.Get(ctx, k); err != nil || !got.ExpiresAt.Equal(exp.ExpiresAt.Truncate(time.Nanosecond)) {
		t.Fatalf("Get = %+v, %v; want ExpiresAt %v", got, err, exp.ExpiresAt)
	}
	swap([]byte("x"), e("y"), true)
	if ttl, err := s.client.PTTL(ctx, name).Result(); err != nil || ttl != -1 {
		t.Fatalf("PTTL after a Swap without ExpiresAt = %v, %v; want none (-1)", ttl, err)
	}

	// A record that cannot be parsed is no entry, for Swap as for Get.
	if err := s.client.Set(ctx, name, "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	swap([]byte("garbage"), e("z"), false)
	swap(nil, e("z"), true)
}

func TestGetAndCreate(t *testing.T) {
	s := newSingle(t)
	ctx := context.Background()
	k, rk, also := keys(t, s)
	rec := func(v string) store.Entry { return store.Entry{Value: []byte(v), StoredAt: time.Now()} }
	call := func(r store.Entry) store.GetAndCreateResult {
		t.Helper()
		res, err := s.GetAndCreate(ctx, k, also, rk, r)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Nothing there: a miss, the record created, the counters missing.
	res := call(rec("mine"))
	if !errors.Is(res.GetErr, store.ErrNotFound) || !res.Created || string(res.Cur) != "mine" ||
		len(res.Also) != 2 || res.Also[0] != nil || res.Also[1] != nil {
		t.Fatalf("first GetAndCreate = %+v", res)
	}
	if e, err := s.Get(ctx, rk); err != nil || string(e.Value) != "mine" {
		t.Fatalf("record after GetAndCreate = %q, %v", e.Value, err)
	}
	// The record is there: not created, Cur is the holder's; the entry and a counter too.
	if err := s.Set(ctx, k, rec("value")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, also[1], rec("12345678")); err != nil {
		t.Fatal(err)
	}
	res = call(rec("theirs"))
	if res.GetErr != nil || string(res.Entry.Value) != "value" || res.Created || string(res.Cur) != "mine" ||
		res.Also[0] != nil || string(res.Also[1]) != "12345678" {
		t.Fatalf("second GetAndCreate = %+v", res)
	}
	// Once Swap deletes the record it can be created again, with an expiry.
	if ok, err := s.Swap(ctx, rk, []byte("mine"), nil); err != nil || !ok {
		t.Fatalf("Swap delete = %v, %v", ok, err)
	}
	r := rec("again")
	r.ExpiresAt = time.Now().Add(time.Hour)
	if res = call(r); !res.Created || string(res.Cur) != "again" {
		t.Fatalf("GetAndCreate after release = %+v", res)
	}
	if ttl, err := s.client.PTTL(ctx, s.keys.name(rk)).Result(); err != nil || ttl <= 0 {
		t.Fatalf("PTTL of a record created with ExpiresAt = %v, %v", ttl, err)
	}
	// A corrupt entry is the read's error alone; a garbled record at rk is replaced.
	if err := s.client.Set(ctx, s.keys.name(k), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.client.Set(ctx, s.keys.name(rk), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if res = call(rec("new")); !errors.Is(res.GetErr, store.ErrCorrupt) || !errors.Is(res.GetErr, store.ErrNotFound) ||
		!res.Created || string(res.Cur) != "new" {
		t.Fatalf("GetAndCreate over garbage = %+v", res)
	}
	// A garbled counter fails the whole call (never read as missing, which is 0),
	// and nothing is created.
	if err := s.Delete(ctx, rk); err != nil {
		t.Fatal(err)
	}
	if err := s.client.Set(ctx, s.keys.name(also[0]), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAndCreate(ctx, k, also, rk, rec("x")); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), also[0].String()) {
		t.Fatalf("GetAndCreate with a garbled counter = %v, want ErrCorrupt naming %s", err, also[0])
	}
	if _, err := s.Get(ctx, rk); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAndCreate that failed created its record: %v", err)
	}
	// Too large: refused before anything is sent.
	small, err := New(s.client, &Options{Prefix: s.keys.prefix, MaxValueSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.(*Store).GetAndCreate(ctx, k, nil, rk, rec("four")); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("GetAndCreate of a large record = %v", err)
	}
}

func TestSetAndDelete(t *testing.T) {
	s := newSingle(t)
	ctx := context.Background()
	k, rk, also := keys(t, s)
	entry := func(v string) store.Entry { return store.Entry{Value: []byte(v), StoredAt: time.Now()} }
	call := func(e store.Entry, old []byte) (bool, [][]byte) {
		t.Helper()
		deleted, vals, err := s.SetAndDelete(ctx, k, e, rk, old, also)
		if err != nil {
			t.Fatal(err)
		}
		if len(vals) != len(also) {
			t.Fatalf("SetAndDelete read %d values, want %d", len(vals), len(also))
		}
		return deleted, vals
	}
	stored := func(want string) {
		t.Helper()
		if e, err := s.Get(ctx, k); err != nil || string(e.Value) != want {
			t.Fatalf("entry = %q, %v; want %q", e.Value, err, want)
		}
	}
	// rk absent: the entry is stored, nothing deleted, counters missing.
	if deleted, vals := call(entry("one"), []byte("lease")); deleted || vals[0] != nil || vals[1] != nil {
		t.Fatalf("SetAndDelete without a record = %v, %q", deleted, vals)
	}
	stored("one")
	// rk holds another value: kept.
	if ok, err := s.Swap(ctx, rk, nil, &store.Entry{Value: []byte("other"), StoredAt: time.Now()}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := s.Set(ctx, also[0], entry("v0")); err != nil {
		t.Fatal(err)
	}
	if deleted, vals := call(entry("two"), []byte("lease")); deleted || string(vals[0]) != "v0" || vals[1] != nil {
		t.Fatalf("SetAndDelete of another's record = %v, %q", deleted, vals)
	}
	stored("two")
	if e, err := s.Get(ctx, rk); err != nil || string(e.Value) != "other" {
		t.Fatalf("another's record after SetAndDelete = %q, %v", e.Value, err)
	}
	// old == nil deletes nothing.
	if deleted, _ := call(entry("three"), nil); deleted {
		t.Fatal("SetAndDelete with old == nil deleted")
	}
	// rk holds old: deleted; the entry keeps its expiry.
	e := entry("four")
	e.ExpiresAt = time.Now().Add(time.Hour)
	if deleted, _ := call(e, []byte("other")); !deleted {
		t.Fatal("SetAndDelete did not delete the matching record")
	}
	if _, err := s.Get(ctx, rk); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record after SetAndDelete = %v", err)
	}
	stored("four")
	if ttl, err := s.client.PTTL(ctx, s.keys.name(k)).Result(); err != nil || ttl <= 0 {
		t.Fatalf("PTTL of an entry stored with ExpiresAt = %v, %v", ttl, err)
	}
	// The reads come after the write: a key of also that is k reads the new entry.
	deleted, vals, err := s.SetAndDelete(ctx, k, entry("five"), rk, []byte("x"), []store.Key{k})
	if err != nil || deleted || !bytes.Equal(vals[0], []byte("five")) {
		t.Fatalf("SetAndDelete reading k = %v, %q, %v; want the new value", deleted, vals, err)
	}
	// A garbled counter is an error matching ErrCorrupt; the entry is stored all the same.
	if err := s.client.Set(ctx, s.keys.name(also[1]), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetAndDelete(ctx, k, entry("six"), rk, nil, also); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("SetAndDelete with a garbled counter = %v, want ErrCorrupt", err)
	}
	stored("six")
}

// TestScriptsWake: the scripts that change the entry or a lease wake the watchers of
// the entry and of the lease, which share a channel; taking a free lease
// (GetAndCreate) publishes nothing, as nobody waits for a lease to be taken.
func TestScriptsWake(t *testing.T) {
	s := newSingle(t)
	ctx := context.Background()
	k, rk, _ := keys(t, s)
	// A subscription of its own reads the channel's messages in order: a marker
	// published after a script comes first if and only if the script published nothing.
	sub := s.client.Subscribe(ctx, s.keys.channel(k))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	msgs := sub.Channel()
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m.Payload
		case <-time.After(eventually):
			t.Fatalf("no message after %s", what)
			return ""
		}
	}
	woken := func(what string) {
		t.Helper()
		if got := next(what); got != "v" {
			t.Fatalf("message after %s = %q, want a wake-up", what, got)
		}
	}
	rec := store.Entry{Value: []byte("l"), StoredAt: time.Now()}
	if res, err := s.GetAndCreate(ctx, k, nil, rk, rec); err != nil || !res.Created {
		t.Fatalf("GetAndCreate = %+v, %v", res, err)
	}
	if err := s.client.Publish(ctx, s.keys.channel(k), "marker").Err(); err != nil {
		t.Fatal(err)
	}
	if got := next("GetAndCreate"); got != "marker" {
		t.Fatalf("GetAndCreate of a free lease published %q", got)
	}
	if _, _, err := s.SetAndDelete(ctx, k, rec, rk, []byte("l"), nil); err != nil {
		t.Fatal(err)
	}
	woken("SetAndDelete")
	if _, err := s.Swap(ctx, rk, nil, &rec); err != nil {
		t.Fatal(err)
	}
	woken("Swap")
	// The store's own Watch wakes on the release.
	ch, stop, err := s.Watch(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, _, err := s.SetAndDelete(ctx, k, rec, rk, rec.Value, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(eventually):
		t.Fatal("no Watch wake-up after SetAndDelete")
	}
}

// TestInternalRecordsStayInternal: a user namespace's Clear, Entries and DeleteBefore
// never reach the lease and counter records the portable layer keeps beside it;
// Namespaces names the namespace of a lease once, and no counter's; ReleaseAll and
// Leases find the leases.
func TestInternalRecordsStayInternal(t *testing.T) {
	for name, d := range map[string]func(t *testing.T) store.Driver{
		"single":  func(t *testing.T) store.Driver { return newSingle(t) },
		"cluster": func(t *testing.T) store.Driver { d, _ := New(clusterClient(t), nil); return d },
	} {
		t.Run(name, func(t *testing.T) {
			s := store.Adapt(d(t))
			t.Cleanup(func() { _ = s.Close() })
			ctx := context.Background()
			ns, other := storetest.Namespace(t), storetest.Namespace(t)
			counter := "tag:" + ns
			t.Cleanup(func() {
				_ = s.Clear(ctx, ns)
				_, _ = s.ReleaseAll(ctx, ns)
				_, _ = s.ReleaseAll(ctx, other)
				_ = s.Delete(ctx, store.Key{Namespace: store.InternalPrefix, ID: counter})
			})
			vs := s.(store.Versioner)
			v, err := vs.Bump(ctx, counter)
			if err != nil {
				t.Fatal(err)
			}
			k := store.Key{Namespace: ns, ID: "k"}
			if err := s.Set(ctx, k, store.Entry{Value: []byte("v"), StoredAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			for _, key := range []store.Key{k, {Namespace: ns, ID: "leased only"}, {Namespace: other, ID: "x"}} {
				if _, err := s.Acquire(ctx, key, store.Owner{Token: "t"}, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			var listed []string
			for info, err := range s.Entries(ctx, ns) {
				if err != nil {
					t.Fatal(err)
				}
				listed = append(listed, info.Key.ID)
			}
			if !slices.Equal(listed, []string{"k"}) {
				t.Errorf("Entries = %q; want only the entry", listed)
			}
			all, err := s.Namespaces(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range all {
				if n == "" || n[0] == store.InternalPrefix[0] {
					t.Errorf("Namespaces lists %q", n)
				}
			}
			if !slices.Contains(all, ns) || !slices.Contains(all, other) {
				t.Errorf("Namespaces = %q; want %q (entry and leases) and %q (a lease only)", all, ns, other)
			}
			if n, err := s.DeleteBefore(ctx, ns, time.Now().Add(time.Hour)); err != nil || n != 1 {
				t.Errorf("DeleteBefore = %d, %v; want 1 (the entry, not the leases)", n, err)
			}
			if err := s.Clear(ctx, ns); err != nil {
				t.Fatal(err)
			}
			var leased []string
			for l, err := range s.Leases(ctx, ns) {
				if err != nil {
					t.Fatal(err)
				}
				leased = append(leased, l.Key.ID)
			}
			if slices.Sort(leased); !slices.Equal(leased, []string{"k", "leased only"}) {
				t.Errorf("Leases after Clear and DeleteBefore = %q; want both", leased)
			}
			if got, err := vs.Versions(ctx, []string{counter}); err != nil || got[0] != v {
				t.Errorf("counter after Clear = %v, %v; want %d", got, err, v)
			}
			if n, err := s.ReleaseAll(ctx, ns); err != nil || n != 2 {
				t.Errorf("ReleaseAll = %d, %v; want 2", n, err)
			}
			for l, err := range s.Leases(ctx, other) {
				if err != nil || l.Key.ID != "x" {
					t.Errorf("lease of another namespace after ReleaseAll: %+v, %v", l, err)
				}
			}
		})
	}
}

// TestScriptsAfterFlush: a server that has lost its scripts (SCRIPT FLUSH, a
// restart) is given them again by the miss path's calls, which send EVALSHA
// themselves rather than through Script.Run.
func TestScriptsAfterFlush(t *testing.T) {
	s := newSingle(t)
	ctx := context.Background()
	k, rk, also := keys(t, s)
	rec := store.Entry{Value: []byte("l"), StoredAt: time.Now()}
	if err := s.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := s.GetAndCreate(ctx, k, also, rk, rec); err != nil || !res.Created {
		t.Fatalf("GetAndCreate after SCRIPT FLUSH = %+v, %v", res, err)
	}
	if err := s.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if deleted, _, err := s.SetAndDelete(ctx, k, rec, rk, []byte("l"), also); err != nil || !deleted {
		t.Fatalf("SetAndDelete after SCRIPT FLUSH = %v, %v", deleted, err)
	}
	// The batches send their scripts in one pipeline, and send again the ones the
	// server refused.
	k2 := store.Key{Namespace: k.Namespace, ID: "k2"}
	rk2 := store.Key{Namespace: rk.Namespace, ID: "k2"}
	t.Cleanup(func() { _ = s.Delete(ctx, k2); _ = s.Delete(ctx, rk2) })
	if err := s.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if swapped, err := s.SwapMany(ctx, []store.Key{rk, rk2}, [][]byte{nil, nil}, []*store.Entry{&rec, &rec}); err != nil || !slices.Equal(swapped, []bool{true, true}) {
		t.Fatalf("SwapMany after SCRIPT FLUSH = %v, %v", swapped, err)
	}
	if err := s.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	deleted, errs, _, err := s.SetAndDeleteMany(ctx, []store.Key{k, k2}, []store.Entry{rec, rec}, []store.Key{rk, rk2},
		[][]byte{[]byte("l"), []byte("l")}, also)
	if err != nil || !slices.Equal(deleted, []bool{true, true}) || errors.Join(errs...) != nil {
		t.Fatalf("SetAndDeleteMany after SCRIPT FLUSH = %v, %v, %v", deleted, errs, err)
	}
}
