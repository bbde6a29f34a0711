package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cachier-go/cachier/store"
)

// testVersions checks store.Versioner: counters start at 0, every Bump leaves a value
// the counter never had, counters are shared by name across namespaces and survive
// Clear, and they never collide with entries.
func testVersions(e *env) {
	v, ok := e.s.(store.Versioner)
	if !ok {
		e.t.Fatalf("%T does not implement store.Versioner; tags, prefixes and dependents need it", e.s)
	}
	ns := e.ns()
	a, b := "tag:"+ns+":a", "tag:"+ns+":b"
	got, err := v.Versions(e.ctx, []string{a, b})
	if err != nil || !slices.Equal(got, []uint64{0, 0}) {
		e.t.Fatalf("Versions of new counters = %v, %v; want [0 0]", got, err)
	}
	seen := map[uint64]bool{0: true}
	for range 5 {
		n, err := v.Bump(e.ctx, a)
		if err != nil {
			e.t.Fatalf("Bump: %v", err)
		}
		if seen[n] {
			e.t.Fatalf("Bump returned %d, a value the counter already had", n)
		}
		seen[n] = true
		got, err := v.Versions(e.ctx, []string{b, a, b})
		if err != nil || !slices.Equal(got, []uint64{0, n, 0}) {
			e.t.Fatalf("Versions after Bump(a)=%d: %v, %v; want [0 %d 0]", n, got, err, n)
		}
	}
	// Counters are not entries: an entry with the counter's name as its ID, and a
	// Clear of the namespace, leave them alone.
	e.set(store.Key{Namespace: ns, ID: a}, []byte("entry"), time.Now())
	if err := e.s.Clear(e.ctx, ns); err != nil && (e.clears || !errors.Is(err, errors.ErrUnsupported)) {
		e.t.Fatal(err)
	}
	if got, _ := v.Versions(e.ctx, []string{a}); got[0] == 0 {
		e.t.Fatal("Clear or Set reset a counter")
	}
	// Odd names round-trip and stay distinct.
	odd := []string{"../../x", "a/b", "a%2Fb", "{tag}", "user:42", "é漢字", "with space", ns + "\t"}
	vals := map[string]uint64{}
	for _, name := range odd {
		n, err := v.Bump(e.ctx, name+ns)
		if err != nil {
			e.t.Fatalf("Bump(%q): %v", name, err)
		}
		vals[name] = n
	}
	for _, name := range odd {
		got, err := v.Versions(e.ctx, []string{name + ns})
		if err != nil || got[0] != vals[name] {
			e.t.Fatalf("Versions(%q) = %v, %v; want %d", name, got, err, vals[name])
		}
	}
	// Concurrent bumps: each succeeds, and the counter ends on one of their values.
	c := "tag:" + ns + ":concurrent"
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		out = map[uint64]bool{}
	)
	for i := range 8 {
		wg.Go(func() {
			n, err := v.Bump(e.ctx, c)
			if err != nil {
				e.t.Errorf("concurrent Bump %d: %v", i, err)
				return
			}
			mu.Lock()
			out[n] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	got, err = v.Versions(e.ctx, []string{c})
	if err != nil || !out[got[0]] {
		e.t.Fatalf("after concurrent bumps the counter is %v (%v); want one of %v", got, err, fmt.Sprint(out))
	}
}

// testGetVersioned checks store.VersionedGetter (native, or the portable layer's batch):
// a missing entry is ErrNotFound with no versions; a present one comes with the
// counters in the order asked, repeated names included; counters are neither entries
// nor namespaces; and a Clear is seen at once.
func testGetVersioned(e *env) {
	vg, ok := e.s.(store.VersionedGetter)
	if !ok {
		e.t.Fatal("the portable layer does not implement store.VersionedGetter")
	}
	v := e.s.(store.Versioner)
	ns := e.ns()
	// Enough counters to land on several slots of a cluster or several statements.
	names := make([]string, 8)
	for i := range names {
		names[i] = fmt.Sprintf("tag:%s:%d", ns, i)
	}
	want := make([]uint64, len(names))
	for i := range names {
		if i%2 == 0 {
			var err error
			if want[i], err = v.Bump(e.ctx, names[i]); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	names, want = append(names, names[0]), append(want, want[0])
	k := store.Key{Namespace: ns, ID: "k"}
	if _, vs, err := vg.GetVersioned(e.ctx, k, names); !errors.Is(err, store.ErrNotFound) || vs != nil {
		e.t.Errorf("GetVersioned of a missing entry = %v, %v; want ErrNotFound and no versions", vs, err)
	}
	at := time.UnixMilli(time.Now().UnixMilli())
	e.set(k, []byte("value"), at)
	got, vs, err := vg.GetVersioned(e.ctx, k, names)
	if err != nil || string(got.Value) != "value" || got.StoredAt.Sub(at).Abs() >= time.Millisecond || !slices.Equal(vs, want) {
		e.t.Errorf("GetVersioned = %q at %v, %v, %v; want %q at %v, %v", got.Value, got.StoredAt, vs, err, "value", at, want)
	}
	if got, vs, err := vg.GetVersioned(e.ctx, k, nil); err != nil || string(got.Value) != "value" || len(vs) != 0 {
		e.t.Errorf("GetVersioned without counters = %q, %v, %v", got.Value, vs, err)
	}
	if _, _, err := vg.GetVersioned(e.ctx, k, []string{""}); !errors.Is(err, store.ErrInvalidKey) {
		e.t.Errorf("GetVersioned with an empty counter name: %v; want ErrInvalidKey", err)
	}
	if !e.caps.NoListing && e.clears {
		nss, err := e.s.Namespaces(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, n := range nss {
			if strings.Contains(n, "tag:"+ns) || strings.HasPrefix(n, store.InternalPrefix) {
				e.t.Errorf("Namespaces lists a counter or an internal namespace: %q", n)
			}
		}
		if err := e.s.Clear(e.ctx, ns); err != nil {
			e.t.Fatal(err)
		}
		if _, _, err := vg.GetVersioned(e.ctx, k, names); !errors.Is(err, store.ErrNotFound) {
			e.t.Errorf("GetVersioned after Clear: %v; want ErrNotFound", err)
		}
	}
}
