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
