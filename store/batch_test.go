package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
)

func TestGetManySetManyFallback(t *testing.T) {
	ctx := context.Background()
	d := NewMapStore() // the example driver: the smallest Driver
	ks := []store.Key{{Namespace: "ns", ID: "a"}, {Namespace: "ns", ID: "b"}, {Namespace: "ns", ID: "c"}}
	errs, err := store.SetMany(ctx, d, ks[:2], []store.Entry{{Value: []byte("A")}, {Value: []byte("B")}})
	if err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("SetMany = %v, %v", errs, err)
	}
	es, errs, err := store.GetMany(ctx, d, ks)
	if err != nil {
		t.Fatal(err)
	}
	if string(es[0].Value) != "A" || string(es[1].Value) != "B" || errs[0] != nil || errs[1] != nil {
		t.Fatalf("GetMany found %q %q (%v %v), want A B", es[0].Value, es[1].Value, errs[0], errs[1])
	}
	if !errors.Is(errs[2], store.ErrNotFound) {
		t.Fatalf("GetMany of a missing key: err %v, want ErrNotFound", errs[2])
	}
}

// GetManyVersioned reads entries and counters together, and WriteAndReleaseMany
// writes, writes the marks after, releases only the leases it is given and reads the
// counters after, on a driver with neither capability (the portable layer's
// fallbacks).
func TestGetManyVersionedAndWriteAndReleaseMany(t *testing.T) {
	ctx := context.Background()
	s := store.Adapt(NewMapStore())
	a, b := store.Key{Namespace: "ns", ID: "a"}, store.Key{Namespace: "ns", ID: "b"}
	mark := store.Key{Namespace: "marks", ID: "m"} // written after a and b
	if err := s.Set(ctx, a, store.Entry{Value: []byte("A")}); err != nil {
		t.Fatal(err)
	}
	v1, err := s.(store.Versioner).Bump(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	es, errs, vs, verr, err := s.(store.VersionedBatcher).GetManyVersioned(ctx, []store.Key{a, b}, []string{"c1", "c2"})
	if err != nil || verr != nil {
		t.Fatal(err, verr)
	}
	if string(es[0].Value) != "A" || errs[0] != nil || !errors.Is(errs[1], store.ErrNotFound) || len(es) != 2 {
		t.Errorf("GetManyVersioned entries %q (%v), %v; want A, then ErrNotFound", es[0].Value, errs[0], errs[1])
	}
	if len(vs) != 2 || vs[0] != v1 || vs[1] != 0 {
		t.Errorf("GetManyVersioned counters %v, want [%d 0]", vs, v1)
	}
	o := store.Owner{Host: "h", PID: 1, Token: "t1"}
	l, err := s.Acquire(ctx, a, o, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, b, o, time.Hour); err != nil {
		t.Fatal(err)
	}
	werrs, relErrs, vs, err := s.(store.WriteReleaseBatcher).WriteAndReleaseMany(ctx, []store.Key{a, b}, []store.Entry{{Value: []byte("A2")}, {Value: []byte("B2")}}, []store.Lease{l, {}}, []store.Key{mark}, []store.Entry{{Value: []byte("M")}}, []string{"c1"})
	if err != nil || len(werrs) != 3 || werrs[0] != nil || werrs[1] != nil || werrs[2] != nil || relErrs[0] != nil || relErrs[1] != nil {
		t.Fatal(werrs, relErrs, err)
	}
	if len(vs) != 1 || vs[0] != v1 {
		t.Errorf("WriteAndReleaseMany counters %v, want [%d]", vs, v1)
	}
	for k, want := range map[store.Key]string{a: "A2", b: "B2", mark: "M"} {
		if e, err := s.Get(ctx, k); err != nil || string(e.Value) != want {
			t.Errorf("%s = %q, %v; want %q", k, e.Value, err, want)
		}
	}
	other := store.Owner{Host: "h", PID: 2, Token: "t2"}
	if _, err := s.Acquire(ctx, a, other, time.Hour); err != nil {
		t.Errorf("a's lease after WriteAndReleaseMany: %v; want it released", err)
	}
	if _, err := s.Acquire(ctx, b, other, time.Hour); !errors.Is(err, store.ErrLeaseHeld) {
		t.Errorf("b's lease, not given: %v; want it still held (ErrLeaseHeld)", err)
	}
}

// WriteAndReleaseManySwap writes, then swaps the marks only from their old values, on
// a driver with Swap alone (the portable layer's fallback).
func TestWriteAndReleaseManySwap(t *testing.T) {
	ctx := context.Background()
	s := store.Adapt(&swapMapStore{NewMapStore()})
	a := store.Key{Namespace: "ns", ID: "a"}
	mark := store.Key{Namespace: "marks", ID: "m"}
	call := func(v string, old []byte, next string) bool {
		t.Helper()
		errs, _, _, swapped, err := s.(store.WriteReleaseSwapBatcher).WriteAndReleaseManySwap(ctx, []store.Key{a}, []store.Entry{{Value: []byte(v)}}, []store.Lease{{}}, []store.Key{mark}, [][]byte{old}, []store.Entry{{Value: []byte(next)}}, nil)
		if err != nil || len(errs) != 2 || errs[0] != nil || errs[1] != nil || len(swapped) != 1 {
			t.Fatal(errs, swapped, err)
		}
		return swapped[0]
	}
	stored := func(want map[store.Key]string) {
		t.Helper()
		for k, v := range want {
			if e, err := s.Get(ctx, k); err != nil || string(e.Value) != v {
				t.Errorf("%s = %q, %v; want %q", k, e.Value, err, v)
			}
		}
	}
	if !call("A1", nil, "M1") {
		t.Fatal("the absent mark was not created")
	}
	stored(map[store.Key]string{a: "A1", mark: "M1"})
	if call("A2", nil, "M2") {
		t.Fatal("swapped from absent over M1")
	}
	stored(map[store.Key]string{a: "A2", mark: "M1"})
	if !call("A3", []byte("M1"), "M3") {
		t.Fatal("not swapped from M1")
	}
	stored(map[store.Key]string{a: "A3", mark: "M3"})
	if _, _, _, _, err := store.Adapt(NewMapStore()).(store.WriteReleaseSwapBatcher).WriteAndReleaseManySwap(ctx, []store.Key{a}, []store.Entry{{Value: []byte("x")}}, []store.Lease{{}}, []store.Key{mark}, [][]byte{nil}, []store.Entry{{Value: []byte("y")}}, nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("without Swap: %v, want errors.ErrUnsupported", err)
	}
}

// CompareAndSet swaps through a Store over a Swapper, and is unsupported without one.
func TestCompareAndSet(t *testing.T) {
	ctx := context.Background()
	k := store.Key{Namespace: "marks", ID: "m"}
	s := store.Adapt(&swapMapStore{NewMapStore()})
	if !store.CanCompareAndSet(s) || store.CanCompareAndSet(store.Adapt(NewMapStore())) {
		t.Fatal("CanCompareAndSet wrong")
	}
	for _, c := range []struct {
		old, next string
		want      bool
	}{{"", "M1", true}, {"", "M2", false}, {"M2", "M3", false}, {"M1", "M3", true}} {
		var old []byte
		if c.old != "" {
			old = []byte(c.old)
		}
		if ok, err := store.CompareAndSet(ctx, s, k, old, store.Entry{Value: []byte(c.next)}); err != nil || ok != c.want {
			t.Fatalf("CompareAndSet(%q -> %q) = %v, %v; want %v", c.old, c.next, ok, err, c.want)
		}
	}
	if e, err := s.Get(ctx, k); err != nil || string(e.Value) != "M3" {
		t.Fatalf("mark %q, %v; want M3", e.Value, err)
	}
	if _, err := store.CompareAndSet(ctx, store.Adapt(NewMapStore()), k, nil, store.Entry{Value: []byte("x")}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("without Swap: %v, want errors.ErrUnsupported", err)
	}
}
