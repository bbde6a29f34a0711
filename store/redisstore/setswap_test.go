package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// SetAndDeleteManySwap writes, then swaps the marks only from their old values, in
// one script. After SCRIPT FLUSH it is sent again, the swaps still after the writes.
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
	// Only the swap's script loaded: the swaps are in the writes' script, sent again
	// with it, and still follow the write.
	if err := s.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Swap(ctx, rk, []byte("none"), nil); err != nil {
		t.Fatal(err)
	}
	if !call("five", []byte("m4"), "m5") {
		t.Fatal("after SCRIPT FLUSH with Swap's script loaded again, not swapped from m4")
	}
	stored(k, "five")
	stored(mark, "m5")
}

// splitHook runs the next pipeline of two commands as two: the first after SCRIPT
// FLUSH (so that it is refused, NOSCRIPT), the second after the batch script is
// loaded again, as when another client loads it in between.
type splitHook struct {
	armed atomic.Bool
	other *redis.Client
}

func (*splitHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*splitHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *splitHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) != 2 || !h.armed.CompareAndSwap(true, false) {
			return next(ctx, cmds)
		}
		if err := h.other.ScriptFlush(ctx).Err(); err != nil {
			return err
		}
		err := next(ctx, cmds[:1])
		if err := setAndDeleteManyScript.Load(ctx, h.other).Err(); err != nil {
			return err
		}
		return errors.Join(err, next(ctx, cmds[1:]))
	}
}

// A batch of more writes than one script takes, whose first script is refused
// (NOSCRIPT) and sent again after the last one ran: the last one's swaps came before
// those writes and report false, and the counters are read again, after them.
func TestSetAndDeleteManySwapResentBeforeLast(t *testing.T) {
	client := singleClient(t)
	h := &splitHook{other: singleClient(t)}
	client.AddHook(h)
	d, err := New(client, &Options{Prefix: "cachier-scripts"})
	if err != nil {
		t.Fatal(err)
	}
	s := d.(*Store)
	ctx := context.Background()
	ns := storetest.Namespace(t)
	n := maxBatchScriptKeys + 1
	ks, es, rks, olds := make([]store.Key, n), make([]store.Entry, n), make([]store.Key, n), make([][]byte, n)
	lease := store.Entry{Value: []byte("L"), StoredAt: time.Now()}
	for i := range n {
		ks[i] = store.Key{Namespace: ns, ID: fmt.Sprint(i)}
		rks[i] = store.Key{Namespace: store.InternalPrefix + ns, ID: fmt.Sprint(i)}
		es[i], olds[i] = store.Entry{Value: []byte("v"), StoredAt: time.Now()}, lease.Value
		if err := s.Set(ctx, rks[i], lease); err != nil {
			t.Fatal(err)
		}
	}
	mark := store.Key{Namespace: ns, ID: "mark"}
	t.Cleanup(func() { _ = s.Clear(ctx, ns); _ = s.Clear(ctx, store.InternalPrefix+ns) })
	h.armed.Store(true)
	// The counter read is the first write's lease record, which that write deletes.
	deleted, errs, vals, swapped, err := s.SetAndDeleteManySwap(ctx, ks, es, rks, olds, rks[:1],
		[]store.Key{mark}, [][]byte{nil}, []store.Entry{{Value: []byte("m"), StoredAt: time.Now()}})
	if err != nil || errors.Join(errs...) != nil {
		t.Fatalf("SetAndDeleteManySwap: %v, %v", errs, err)
	}
	if h.armed.Load() {
		t.Fatal("the batch was not sent as one pipeline of two scripts")
	}
	if !deleted[0] || !deleted[n-1] {
		t.Errorf("deleted[0] = %v, deleted[%d] = %v; want both", deleted[0], n-1, deleted[n-1])
	}
	if swapped[0] {
		t.Error("a swap that ran before writes sent again reported swapped")
	}
	if len(vals) != 1 || vals[0] != nil {
		t.Errorf("counters read %q; want the first lease record missing, read after its write", vals)
	}
}
