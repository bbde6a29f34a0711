package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cachier-go/cachier/store"
)

// SetAndDeleteManySwap writes, then swaps the marks only from their old values, in
// one pipeline. After SCRIPT FLUSH both scripts are sent again, the writes first; a
// swap that ran before writes that had to be sent again reports false, so that the
// caller moves the mark once more, after them.
func TestSetAndDeleteManySwap(t *testing.T) {
	s := newSingle(t)
	ctx := context.Background()
	k, rk, also := keys(t, s)
	mark := store.Key{Namespace: k.Namespace, ID: "mark"}
	t.Cleanup(func() { _ = s.Delete(ctx, mark) })
	entry := func(v string) store.Entry { return store.Entry{Value: []byte(v), StoredAt: time.Now()} }
	call := func(v string, old []byte, next string) bool {
		t.Helper()
		_, errs, vals, swapped, err := s.SetAndDeleteManySwap(ctx, []store.Key{k}, []store.Entry{entry(v)}, []store.Key{rk}, [][]byte{nil}, also,
			[]store.Key{mark}, [][]byte{old}, []store.Entry{entry(next)})
		if err != nil || errs[0] != nil || len(vals) != len(also) || len(swapped) != 1 {
			t.Fatalf("SetAndDeleteManySwap = %v, %d values, %v, %v", errs, len(vals), swapped, err)
		}
		return swapped[0]
	}
	stored := func(x store.Key, want string) {
		t.Helper()
		e, err := s.Get(ctx, x)
		if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
		if err != nil || string(e.Value) != want {
			t.Fatalf("%s = %q, %v; want %q", x, e.Value, err, want)
		}
	}
	if !call("one", nil, "m1") {
		t.Fatal("the absent mark was not created")
	}
	stored(k, "one")
	stored(mark, "m1")
	if call("two", nil, "m2") {
		t.Fatal("swapped from absent over m1")
	}
	stored(k, "two")
	stored(mark, "m1")
	if !call("three", []byte("m1"), "m3") {
		t.Fatal("not swapped from m1")
	}
	stored(k, "three")
	stored(mark, "m3")
	if err := s.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if !call("four", []byte("m3"), "m4") {
		t.Fatal("after SCRIPT FLUSH, not swapped from m3")
	}
	stored(k, "four")
	stored(mark, "m4")
	// Only the swap's script loaded: the swap runs before the write, sent again.
	if err := s.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Swap(ctx, rk, []byte("none"), nil); err != nil {
		t.Fatal(err)
	}
	if call("five", []byte("m4"), "m5") {
		t.Fatal("a swap that ran before the writes reported swapped")
	}
	stored(k, "five")
}
