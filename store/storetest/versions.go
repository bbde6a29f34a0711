package storetest

import (
	"fmt"
	"slices"
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
	if err := e.s.Clear(e.ctx, ns); err != nil {
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
