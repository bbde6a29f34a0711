package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
)

// RunBatchTests checks a driver's batched reads and writes (store.Batcher,
// store.IntoBatcher), or the fallback of store.GetMany, store.GetManyInto and
// store.SetMany for a driver without them: results
// aligned with the keys, misses per key, entries written by one read by the other and
// by Get, keys of several namespaces in one batch, and a cancelled context. d is
// used as given (bare or adapted) and not closed.
func RunBatchTests(t *testing.T, d store.Driver) {
	t.Helper()
	ctx := context.Background()
	ns1, ns2 := Namespace(t), Namespace(t)
	t.Cleanup(func() {
		if l, ok := d.(store.Clearer); ok {
			_ = l.Clear(context.Background(), ns1)
			_ = l.Clear(context.Background(), ns2)
		}
	})
	at := time.UnixMilli(1_700_000_000_123)
	var ks []store.Key
	var es []store.Entry
	for i := range 120 {
		ns := ns1
		if i%3 == 0 {
			ns = ns2
		}
		ks = append(ks, store.Key{Namespace: ns, ID: fmt.Sprintf("batch/%d:ü", i)})
		es = append(es, store.Entry{Value: []byte(fmt.Sprintf("value %d", i)), StoredAt: at.Add(time.Duration(i) * time.Millisecond)})
	}
	// Every other key is written: half by SetMany, the rest stay missing.
	var wk []store.Key
	var we []store.Entry
	for i := range ks {
		if i%2 == 0 {
			wk, we = append(wk, ks[i]), append(we, es[i])
		}
	}
	errs, err := store.SetMany(ctx, d, wk, we)
	if err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	if len(errs) != len(wk) {
		t.Fatalf("SetMany returned %d errors for %d keys", len(errs), len(wk))
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("SetMany %s: %v", wk[i], e)
		}
	}
	got, errs, err := store.GetMany(ctx, d, ks)
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(got) != len(ks) || len(errs) != len(ks) {
		t.Fatalf("GetMany returned %d entries and %d errors for %d keys", len(got), len(errs), len(ks))
	}
	for i, k := range ks {
		if i%2 == 1 {
			if !errors.Is(errs[i], store.ErrNotFound) {
				t.Fatalf("GetMany of missing %s: err %v, want ErrNotFound", k, errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("GetMany %s: %v", k, errs[i])
		}
		if !bytes.Equal(got[i].Value, es[i].Value) || !got[i].StoredAt.Equal(es[i].StoredAt) {
			t.Fatalf("GetMany %s = %q at %v, want %q at %v", k, got[i].Value, got[i].StoredAt, es[i].Value, es[i].StoredAt)
		}
		one, err := d.Get(ctx, k)
		if err != nil || !bytes.Equal(one.Value, es[i].Value) {
			t.Fatalf("Get after SetMany %s = %q, %v; want %q", k, one.Value, err, es[i].Value)
		}
	}
	// GetManyInto answers as GetMany, setting every element of the caller's memory
	// (here holding the answers of another read).
	intoEs, intoErrs := make([]store.Entry, len(ks)), make([]error, len(ks))
	for i := range ks {
		intoEs[i] = store.Entry{Value: []byte("stale"), StoredAt: at, ExpiresAt: at}
		intoErrs[i] = errors.New("stale")
	}
	if err := store.GetManyInto(ctx, d, ks, intoEs, intoErrs); err != nil {
		t.Fatalf("GetManyInto: %v", err)
	}
	for i, k := range ks {
		if (errs[i] == nil) != (intoErrs[i] == nil) || errors.Is(errs[i], store.ErrNotFound) != errors.Is(intoErrs[i], store.ErrNotFound) {
			t.Fatalf("GetManyInto %s: err %v, GetMany's %v", k, intoErrs[i], errs[i])
		}
		if e := intoEs[i]; !bytes.Equal(e.Value, got[i].Value) || !e.StoredAt.Equal(got[i].StoredAt) || !e.ExpiresAt.Equal(got[i].ExpiresAt) {
			t.Fatalf("GetManyInto %s = %q at %v (expires %v), GetMany's %q at %v (expires %v)", k, e.Value, e.StoredAt, e.ExpiresAt, got[i].Value, got[i].StoredAt, got[i].ExpiresAt)
		}
	}
	if err := store.GetManyInto(ctx, d, ks, intoEs[:1], intoErrs); err == nil {
		t.Fatal("GetManyInto into too short a slice succeeded")
	}
	// Written one by one, read together; an empty value is a value.
	k := ks[1]
	if err := d.Set(ctx, k, store.Entry{Value: []byte{}, StoredAt: at}); err != nil {
		t.Fatal(err)
	}
	got, errs, err = store.GetMany(ctx, d, []store.Key{k, k})
	if err != nil || errs[0] != nil || errs[1] != nil || len(got[0].Value) != 0 || !got[1].StoredAt.Equal(at) {
		t.Fatalf("GetMany of an empty value twice = %v, %v, %v", got, errs, err)
	}
	if got, errs, err := store.GetMany(ctx, d, nil); err != nil || len(got) != 0 || len(errs) != 0 {
		t.Fatalf("GetMany of no keys = %v, %v, %v", got, errs, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := store.GetMany(cctx, d, ks[:2]); err == nil {
		t.Fatal("GetMany with a cancelled context succeeded")
	}
	if err := store.GetManyInto(cctx, d, ks[:2], intoEs[:2], intoErrs[:2]); err == nil {
		t.Fatal("GetManyInto with a cancelled context succeeded")
	}
	if _, err := store.SetMany(cctx, d, ks[:1], es[:1]); err == nil {
		t.Fatal("SetMany with a cancelled context succeeded")
	}
}
