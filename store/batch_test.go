package store_test

import (
	"context"
	"errors"
	"testing"

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
