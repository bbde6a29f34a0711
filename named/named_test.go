package named

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
)

type user struct {
	Name string
	Age  int
}

func TestMapOperations(t *testing.T) {
	m := newTestManager(t, newMem(t), newClock())
	c := must[*Cache[string, user]](t)(Register[string, user](m, "users"))
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache has a")
	}
	c.Set("a", user{"Ann", 30})
	c.Set("b", user{"Bob", 40})
	c.Set("a", user{"Ann", 31})
	if v, ok := c.Get("a"); !ok || v.Age != 31 {
		t.Fatalf("Get(a) = %v, %v", v, ok)
	}
	if c.Len() != 2 || c.Dirty() != 3 {
		t.Fatalf("Len %d Dirty %d, want 2 and 3", c.Len(), c.Dirty())
	}
	c.Delete("b")
	c.Delete("missing") // not a change
	if c.Len() != 1 || c.Dirty() != 4 {
		t.Fatalf("Len %d Dirty %d, want 1 and 4", c.Len(), c.Dirty())
	}
	c.Set("c", user{"Cy", 5})
	got := maps.Collect(c.All())
	if len(got) != 2 || got["c"].Name != "Cy" {
		t.Fatalf("All = %v", got)
	}
	// The loop body may modify the cache: All iterates over a snapshot.
	for k := range c.All() {
		c.Delete(k)
	}
	if c.Len() != 0 {
		t.Fatalf("Len after deleting all = %d", c.Len())
	}
	c.Set("x", user{})
	c.Set("y", user{})
	n := 0
	c.Range(func(string, user) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Range did not stop: %d calls", n)
	}
	if got := m.Names(); !slices.Equal(got, []string{"users"}) {
		t.Fatalf("Names = %v", got)
	}
}

func TestPersistAcrossManagers(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	for _, codec := range []cachier.Codec{cachier.CBOR, cachier.JSON, cachier.Gob} {
		t.Run(fmt.Sprintf("%T", codec), func(t *testing.T) {
			name := fmt.Sprintf("users-%T", codec)
			m1 := newTestManager(t, st, clk)
			c1 := must[*Cache[string, user]](t)(Register[string, user](m1, name, WithCodec(codec)))
			c1.Set("a", user{"Ann", 30})
			if err := c1.Save(ctx); err != nil {
				t.Fatal(err)
			}
			if c1.Dirty() != 0 {
				t.Fatalf("Dirty after Save = %d", c1.Dirty())
			}
			m2 := newTestManager(t, st, clk)
			c2 := must[*Cache[string, user]](t)(Register[string, user](m2, name, WithCodec(codec)))
			if v, ok := c2.Get("a"); !ok || v != (user{"Ann", 30}) {
				t.Fatalf("second manager Get(a) = %v, %v", v, ok)
			}
			if s := c2.Stats(); s.Loads != 1 {
				t.Fatalf("stats %+v", s)
			}
			// A different codec reads the map as foreign: a counted miss.
			other := cachier.Codec(cachier.JSON)
			if codec == cachier.JSON {
				other = cachier.CBOR
			}
			m3 := newTestManager(t, st, clk)
			c3 := must[*Cache[string, user]](t)(Register[string, user](m3, name, WithCodec(other)))
			if c3.Len() != 0 || c3.Stats().Corrupt != 1 {
				t.Fatalf("other codec: Len %d stats %+v", c3.Len(), c3.Stats())
			}
		})
	}
}

func TestNotPersistent(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	m := newTestManager(t, st, clk)
	builds := 0
	c := must[*Cache[int, int]](t)(Register[int, int](m, "squares", Persistent(false),
		Builder(func(context.Context) (map[int]int, error) { builds++; return map[int]int{2: 4}, nil })))
	c.Set(3, 9)
	if c.Dirty() != 0 {
		t.Fatalf("memory-only cache counts changes: %d", c.Dirty())
	}
	if err := c.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := st.Len(); n != 0 {
		t.Fatalf("memory-only cache wrote %d entries", n)
	}
	if c.Len() != 2 || builds != 1 {
		t.Fatalf("Len %d builds %d", c.Len(), builds)
	}
	// Invalidation still applies, and the builder refills it.
	if err := c.Invalidate(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 || builds != 2 {
		t.Fatalf("after invalidate: Len %d builds %d", c.Len(), builds)
	}
	if _, err := Register[int, int](m, "x", Persistent(false),
		Loader(func(context.Context, string) (map[int]int, error) { return nil, nil })); !errors.Is(err, ErrOption) {
		t.Fatalf("Loader on a memory-only cache: %v", err)
	}
}

func TestBuilderAndClose(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	builds := 0
	build := Builder(func(context.Context) (map[string]int, error) {
		builds++
		return map[string]int{"one": 1, "two": 2}, nil
	})
	m1 := newTestManager(t, st, clk)
	c1 := must[*Cache[string, int]](t)(Register[string, int](m1, "numbers", build))
	if v, _ := c1.Get("two"); v != 2 || builds != 1 {
		t.Fatalf("Get(two) = %d after %d builds", v, builds)
	}
	if c1.Dirty() != 1 {
		t.Fatalf("a built map is one unsaved change, got %d", c1.Dirty())
	}
	if err := m1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m2 := newTestManager(t, st, clk)
	c2 := must[*Cache[string, int]](t)(Register[string, int](m2, "numbers", build))
	if c2.Len() != 2 || builds != 1 {
		t.Fatalf("second manager: Len %d, builds %d (want the saved map)", c2.Len(), builds)
	}
	// A failing builder leaves the cache empty, and Load retries it.
	fail := true
	m3 := newTestManager(t, newMem(t), clk)
	c3 := must[*Cache[string, int]](t)(Register[string, int](m3, "flaky",
		Builder(func(context.Context) (map[string]int, error) {
			if fail {
				return nil, errors.New("backend down")
			}
			return map[string]int{"ok": 1}, nil
		})))
	if c3.Len() != 0 || c3.Stats().BuildErrors != 1 {
		t.Fatalf("failed build: Len %d stats %+v", c3.Len(), c3.Stats())
	}
	fail = false
	if err := c3.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if c3.Len() != 1 {
		t.Fatalf("after Load: Len %d", c3.Len())
	}
	if _, err := Register[string, string](m3, "wrongtypes", build); !errors.Is(err, ErrOption) {
		t.Fatalf("Builder of map[string]int on a string->string cache: %v", err)
	}
}

func TestValidator(t *testing.T) {
	st, clk := newMem(t), newClock()
	m1 := newTestManager(t, st, clk)
	c1 := must[*Cache[string, int]](t)(Register[string, int](m1, "ages"))
	c1.Set("ann", -5)
	if err := c1.Save(context.Background()); err != nil {
		t.Fatal(err)
	}
	m2 := newTestManager(t, st, clk)
	c2 := must[*Cache[string, int]](t)(Register[string, int](m2, "ages",
		Validator(func(m map[string]int) error {
			for k, v := range m {
				if v < 0 {
					return fmt.Errorf("%s: negative age", k)
				}
			}
			return nil
		}),
		Builder(func(context.Context) (map[string]int, error) { return map[string]int{"ann": 30}, nil })))
	if v, _ := c2.Get("ann"); v != 30 {
		t.Fatalf("Get(ann) = %d, want the built 30", v)
	}
	if s := c2.Stats(); s.Rejected != 1 || s.Builds != 1 || s.Loads != 0 {
		t.Fatalf("stats %+v", s)
	}
	err := c2.Load(context.Background())
	if err == nil {
		t.Fatal("Load did not report the rejected map")
	}
}

func TestCorruptSavedMap(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	m := newTestManager(t, st, clk)
	key := store.Key{Namespace: "cachier/named/test", ID: "c"}
	good := encodeRecord(codecID(cachier.CBOR), kindData, nil, nil, []byte{0xa1, 0x61, 0x61, 0x01}) // {"a": 1}
	notAMap := encodeRecord(codecID(cachier.CBOR), kindData, nil, nil, []byte{0x83, 1, 2, 3})
	flipped := slices.Clone(good)
	flipped[len(flipped)-6] ^= 0x40
	for _, tc := range []struct {
		name    string
		value   []byte
		corrupt bool
	}{
		{"good", good, false},
		{"empty", nil, true},
		{"garbage", []byte("not a frame at all"), true},
		{"flipped", flipped, true},
		{"truncated", good[:len(good)-1], true},
		{"not a map", notAMap, true},
		{"marker", encodeRecord(codecID(cachier.CBOR), kindMarker, nil, nil, nil), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := st.Set(ctx, key, store.Entry{Value: tc.value, StoredAt: clk.Now()}); err != nil {
				t.Fatal(err)
			}
			builds := 0
			mm := newTestManager(t, st, clk)
			c := must[*Cache[string, int]](t)(Register[string, int](mm, "c",
				Builder(func(context.Context) (map[string]int, error) { builds++; return map[string]int{"b": 2}, nil })))
			err := c.Load(ctx)
			if tc.corrupt {
				if err == nil || c.Stats().Corrupt != 1 || builds != 1 {
					t.Fatalf("err %v stats %+v builds %d", err, c.Stats(), builds)
				}
				if v, _ := c.Get("b"); v != 2 {
					t.Fatal("builder's map not served")
				}
				return
			}
			if err != nil || builds != 0 {
				t.Fatalf("err %v builds %d", err, builds)
			}
			if v, _ := c.Get("a"); v != 1 {
				t.Fatalf("Get(a) = %d", v)
			}
		})
	}
	_ = m
}

func TestCycles(t *testing.T) {
	m := newTestManager(t, newMem(t), newClock())
	reg := func(name string, parents ...string) error {
		_, err := Register[string, int](m, name, DependsOn(parents...))
		return err
	}
	if err := reg("self", "self"); !errors.Is(err, ErrCycle) {
		t.Fatalf("self dependency: %v", err)
	}
	if err := reg("a", "b"); err != nil { // b not registered yet: fine
		t.Fatal(err)
	}
	if err := reg("b", "c"); err != nil {
		t.Fatal(err)
	}
	// c -> a -> b -> c closes a cycle through names registered in either order.
	err := reg("c", "a")
	if !errors.Is(err, ErrCycle) {
		t.Fatalf("cycle: %v", err)
	}
	t.Log(err)
	if err := reg("c", "d"); err != nil { // the failed Register left nothing behind
		t.Fatal(err)
	}
	if err := reg("a"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := reg("", "a"); !errors.Is(err, ErrOption) {
		t.Fatalf("empty name: %v", err)
	}
	if err := reg("e", ""); !errors.Is(err, ErrOption) {
		t.Fatalf("empty parent: %v", err)
	}
	if _, err := NewManager(newMem(t), &Options{Name: "a:b"}); !errors.Is(err, ErrOption) {
		t.Fatalf("manager name with ':': %v", err)
	}
}

// TestDependentInvalidation is cacheman's README example.
func TestDependentInvalidation(t *testing.T) {
	ctx := context.Background()
	m := newTestManager(t, newMem(t), newClock())
	edge := must[*Cache[string, int]](t)(Register[string, int](m, "edge", DependsOn("root")))
	leaf := must[*Cache[string, int]](t)(Register[string, int](m, "leaf", DependsOn("edge")))
	root := must[*Cache[string, int]](t)(Register[string, int](m, "root"))
	other := must[*Cache[string, int]](t)(Register[string, int](m, "other"))
	processed := func() int {
		if v, ok := edge.Get("processed"); ok {
			return v
		}
		raw, _ := root.Get("raw")
		edge.Set("processed", raw*5)
		return raw * 5
	}
	if processed() != 0 {
		t.Fatal("want 0 without raw")
	}
	leaf.Set("x", 1)
	other.Set("y", 1)
	root.Set("raw", 1)
	if processed() != 0 {
		t.Fatal("want the cached 0")
	}
	if err := root.Invalidate(ctx); err != nil {
		t.Fatal(err)
	}
	if edge.Len() != 0 || leaf.Len() != 0 || root.Len() != 0 {
		t.Fatalf("after invalidating root: root %d edge %d leaf %d", root.Len(), edge.Len(), leaf.Len())
	}
	if other.Len() != 1 {
		t.Fatal("an unrelated cache was invalidated")
	}
	root.Set("raw", 1)
	if processed() != 5 {
		t.Fatal("want 5 after invalidation")
	}
	// Invalidating a dependent leaves its parent alone.
	if err := leaf.Invalidate(ctx); err != nil {
		t.Fatal(err)
	}
	if edge.Len() != 1 {
		t.Fatal("invalidating leaf emptied edge")
	}
}

// TestSharedStoreInvalidation runs two managers on one store, as two processes would
// share it, on one fake clock.
func TestSharedStoreInvalidation(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	a := newTestManager(t, st, clk)
	b := newTestManager(t, st, clk)
	aRoot := must[*Cache[string, int]](t)(Register[string, int](a, "root"))
	bEdge := must[*Cache[string, int]](t)(Register[string, int](b, "edge", DependsOn("mid")))
	must[*Cache[string, int]](t)(Register[string, int](b, "mid", DependsOn("root")))
	builds := 0
	bBuilt := must[*Cache[string, int]](t)(Register[string, int](b, "built", DependsOn("root"),
		Builder(func(context.Context) (map[string]int, error) { builds++; return map[string]int{"n": builds}, nil })))

	bEdge.Set("k", 1)
	if v, _ := bBuilt.Get("n"); v != 1 {
		t.Fatal("first build")
	}
	if err := b.Save(ctx); err != nil {
		t.Fatal(err)
	}
	aRoot.Set("r", 1)
	if err := aRoot.Invalidate(ctx); err != nil { // a knows nothing of edge
		t.Fatal(err)
	}
	if bEdge.Len() != 1 {
		t.Fatal("b noticed before CheckInterval passed")
	}
	clk.Advance(time.Minute)
	if bEdge.Len() != 0 {
		t.Fatal("b did not notice the invalidation of root after CheckInterval")
	}
	if v, _ := bBuilt.Get("n"); v != 2 {
		t.Fatalf("built cache not rebuilt: n = %d", v)
	}
	if s := bEdge.Stats(); s.Invalidations != 1 || s.Checks < 2 {
		t.Fatalf("edge stats %+v", s)
	}
	// What b saved before the invalidation is stale for everyone.
	c := newTestManager(t, st, clk)
	cEdge := must[*Cache[string, int]](t)(Register[string, int](c, "edge", DependsOn("mid")))
	must[*Cache[string, int]](t)(Register[string, int](c, "mid", DependsOn("root")))
	if cEdge.Len() != 0 || cEdge.Stats().Stale != 1 {
		t.Fatalf("a fresh manager loaded a stale map: Len %d stats %+v", cEdge.Len(), cEdge.Stats())
	}
	// ...and so is a save made by b from a map started before the invalidation, even if
	// b saves it after (it had not checked yet).
	bEdge.Set("k", 2)
	if err := b.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Invalidate(ctx, "mid"); err != nil {
		t.Fatal(err)
	}
	bEdge.Set("k", 3) // within CheckInterval: b still writes into the old map
	if err := bEdge.Save(ctx); err != nil {
		t.Fatal(err)
	}
	d := newTestManager(t, st, clk)
	dEdge := must[*Cache[string, int]](t)(Register[string, int](d, "edge", DependsOn("mid")))
	if _, ok := dEdge.Get("k"); ok {
		t.Fatal("a save of a map started before the invalidation was loaded")
	}
}

func TestClear(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	a := newTestManager(t, st, clk)
	builds := 0
	build := Builder(func(context.Context) (map[string]int, error) { builds++; return map[string]int{"b": 1}, nil })
	root := must[*Cache[string, int]](t)(Register[string, int](a, "root", build))
	kid := must[*Cache[string, int]](t)(Register[string, int](a, "kid", DependsOn("root")))
	root.Set("x", 1)
	kid.Set("y", 1)
	if err := root.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if root.Len() != 0 || kid.Len() != 0 || builds != 1 {
		t.Fatalf("after Clear: root %d kid %d builds %d", root.Len(), kid.Len(), builds)
	}
	// The empty map was saved: another manager loads it rather than building.
	b := newTestManager(t, st, clk)
	root2 := must[*Cache[string, int]](t)(Register[string, int](b, "root", build))
	if root2.Len() != 0 || builds != 1 || root2.Stats().Loads != 1 {
		t.Fatalf("other manager: Len %d builds %d stats %+v", root2.Len(), builds, root2.Stats())
	}
}

func TestCustomSaverLoaderDeleter(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	var (
		mu    sync.Mutex
		disk  = map[string]map[string]string{} // what the custom saver keeps
		saves []string
	)
	opts := []Option{
		Saver(func(_ context.Context, name string, m map[string]string) error {
			mu.Lock()
			defer mu.Unlock()
			disk[name] = m
			saves = append(saves, fmt.Sprint(name, m))
			return nil
		}),
		Loader(func(_ context.Context, name string) (map[string]string, error) {
			mu.Lock()
			defer mu.Unlock()
			if m, ok := disk[name]; ok {
				return maps.Clone(m), nil
			}
			return map[string]string{"load": "faked"}, nil
		}),
	}
	a := newTestManager(t, st, clk)
	c := must[*Cache[string, string]](t)(Register[string, string](a, "my_cache", opts...))
	if err := c.Save(ctx); err != nil {
		t.Fatal(err)
	}
	c.Set("new", "real")
	if err := c.Save(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"my_cachemap[load:faked]", "my_cachemap[load:faked new:real]"}
	if !slices.Equal(saves, want) {
		t.Fatalf("saves %q, want %q", saves, want)
	}
	// Another manager loads through the Loader.
	b := newTestManager(t, st, clk)
	c2 := must[*Cache[string, string]](t)(Register[string, string](b, "my_cache", opts...))
	if v, _ := c2.Get("new"); v != "real" {
		t.Fatalf("Get(new) = %q", v)
	}
	// After an invalidation elsewhere, what the Saver kept predates it: the store's
	// marker says so and the Loader is not trusted.
	if err := a.Invalidate(ctx, "my_cache"); err != nil {
		t.Fatal(err)
	}
	d := newTestManager(t, st, clk)
	c3 := must[*Cache[string, string]](t)(Register[string, string](d, "my_cache", opts...))
	if c3.Len() != 0 || c3.Stats().Stale != 1 {
		t.Fatalf("stale custom map loaded: Len %d stats %+v", c3.Len(), c3.Stats())
	}
	// A Deleter is called for the invalidated cache and its dependents.
	var deleted []string
	del := Deleter(func(_ context.Context, name string) error { deleted = append(deleted, name); return nil })
	e := newTestManager(t, st, clk)
	must[*Cache[string, string]](t)(Register[string, string](e, "p", del))
	must[*Cache[string, string]](t)(Register[string, string](e, "q", DependsOn("p"), del))
	if err := e.Invalidate(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deleted, []string{"p", "q"}) {
		t.Fatalf("deleted %v", deleted)
	}
}

// TestCountersWithoutNativeVersioner: a store whose driver keeps no counters of its
// own still invalidates across managers, with the counters the portable layer keeps
// over Get and Set (store.Adapt).
func TestCountersWithoutNativeVersioner(t *testing.T) {
	ctx := context.Background()
	st, clk := localOnly{newMem(t)}, newClock()
	a := newTestManager(t, st, clk)
	if !a.CrossProcess() {
		t.Fatal("CrossProcess is false over the portable layer's counters")
	}
	root := must[*Cache[string, int]](t)(Register[string, int](a, "root"))
	b := newTestManager(t, st, clk)
	bRoot := must[*Cache[string, int]](t)(Register[string, int](b, "root"))
	bRoot.Set("r", 1)
	if err := root.Invalidate(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if bRoot.Len() != 0 {
		t.Fatal("another manager kept its map after an invalidation through the portable layer's counters")
	}
}

func TestAutoSyncRules(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	m := newTestManager(t, st, clk)
	def := must[*Cache[int, int]](t)(Register[int, int](m, "default"))
	custom := must[*Cache[int, int]](t)(Register[int, int](m, "custom", AutoSync(Rule{Changes: 3, After: 10 * time.Second})))
	manual := must[*Cache[int, int]](t)(Register[int, int](m, "manual", AutoSync()))
	saves := func() [3]uint64 {
		return [3]uint64{def.Stats().Saves, custom.Stats().Saves, manual.Stats().Saves}
	}
	step := func(d time.Duration, want [3]uint64) {
		t.Helper()
		clk.Advance(d)
		if err := m.SaveDue(ctx); err != nil {
			t.Fatal(err)
		}
		if got := saves(); got != want {
			t.Fatalf("saves (default, custom, manual) = %v, want %v", got, want)
		}
	}
	for i := range 9 {
		def.Set(i, i)
		manual.Set(i, i)
	}
	custom.Set(1, 1)
	custom.Set(2, 2)
	step(0, [3]uint64{0, 0, 0})
	step(10*time.Second, [3]uint64{0, 0, 0}) // custom: 2 changes < 3
	custom.Set(3, 3)
	step(0, [3]uint64{0, 1, 0})
	step(280*time.Second, [3]uint64{0, 1, 0}) // 290 s: default's 9 changes < 10, not yet 900 s
	def.Set(9, 9)
	step(9*time.Second, [3]uint64{0, 1, 0}) // 299 s
	step(time.Second, [3]uint64{1, 1, 0})   // 300 s with 10 changes
	def.Set(10, 10)
	step(899*time.Second, [3]uint64{1, 1, 0})
	step(time.Second, [3]uint64{2, 1, 0}) // 900 s with 1 change
	for i := range 10000 {
		def.Set(i, i)
	}
	step(59*time.Second, [3]uint64{2, 1, 0})
	step(time.Second, [3]uint64{3, 1, 0}) // 60 s with 10000 changes
	step(time.Hour, [3]uint64{3, 1, 0})   // nothing unsaved: nothing written
	if manual.Dirty() != 9 {
		t.Fatalf("manual dirty %d", manual.Dirty())
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := saves(); got != [3]uint64{3, 1, 1} {
		t.Fatalf("Close saved %v", got)
	}
	if _, err := Register[int, int](m, "late"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Register after Close: %v", err)
	}
	if _, err := Register[int, int](newTestManager(t, st, clk), "bad", AutoSync(Rule{Changes: 0})); !errors.Is(err, ErrOption) {
		t.Fatalf("bad rule: %v", err)
	}
}

// TestAutoSyncBackground checks that a change that makes a rule hold wakes the
// background goroutine. The clock is fake and the ticker too slow to matter; the test
// waits for the save, it does not time it.
func TestAutoSyncBackground(t *testing.T) {
	st, clk := newMem(t), newClock()
	saved := make(chan store.Key, 256)
	m, err := NewManager(signalSets{st, saved}, &Options{Name: "bg", Clock: clk, Logger: quiet, SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	c := must[*Cache[int, int]](t)(Register[int, int](m, "c", AutoSync(Rule{Changes: 2, After: time.Minute})))
	c.Set(1, 1)
	c.Set(2, 2) // 2 changes but not a minute yet
	clk.Advance(time.Minute)
	c.Set(3, 3) // now the rule holds: the goroutine is woken
	for waiting := true; waiting; {
		select {
		case k := <-saved:
			waiting = k.ID != "c"
		case <-time.After(time.Minute): // a hang guard: the save comes at once
			t.Fatal("no background save a minute after the rule held: the change did not wake the goroutine")
		}
	}
	if _, err := st.Get(context.Background(), store.Key{Namespace: "cachier/named/bg", ID: "c"}); err != nil {
		t.Fatal(err)
	}
}

// signalSets is a driver that reports the key of every Set it made on a channel, so
// that a test waits for a background save without polling.
type signalSets struct {
	store.Driver
	sets chan<- store.Key
}

func (s signalSets) Set(ctx context.Context, k store.Key, e store.Entry) error {
	err := s.Driver.Set(ctx, k, e)
	if err == nil {
		select {
		case s.sets <- k:
		default: // nobody is waiting any more
		}
	}
	return err
}

func TestStoreFailures(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := newMem(t)
	m := newTestManager(t, st, clk)
	c := must[*Cache[string, int]](t)(Register[string, int](m, "c"))
	c.Set("a", 1)
	// A failed save keeps the changes for the next one.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Save(cancelled); err == nil {
		t.Fatal("Save on a cancelled context succeeded")
	}
	if c.Dirty() != 1 || c.Stats().SaveErrors != 1 {
		t.Fatalf("dirty %d stats %+v", c.Dirty(), c.Stats())
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Dirty() != 0 {
		t.Fatal("Close did not save")
	}
	// A store that is down: the cache starts from its builder, the version check
	// fails and the map is kept.
	down := newMem(t)
	m2 := newTestManager(t, down, clk)
	c2 := must[*Cache[string, int]](t)(Register[string, int](m2, "c",
		Builder(func(context.Context) (map[string]int, error) { return map[string]int{"b": 1}, nil })))
	if c2.Len() != 1 {
		t.Fatal("not built")
	}
	_ = down.Close()
	clk.Advance(time.Hour)
	if c2.Len() != 1 || c2.Stats().CheckErrors != 1 {
		t.Fatalf("Len %d stats %+v", c2.Len(), c2.Stats())
	}
	if err := c2.Load(ctx); err == nil {
		t.Fatal("Load on a closed store succeeded")
	}
	if c2.Len() != 1 {
		t.Fatal("builder not used when the store is down")
	}
	if err := c2.Save(ctx); err == nil {
		t.Fatal("Save on a closed store succeeded")
	}
}

// TestConcurrent mixes every operation under -race.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	m := newTestManager(t, st, clk)
	m.check = -1 // check counters on every access
	root := must[*Cache[int, int]](t)(Register[int, int](m, "root"))
	kid := must[*Cache[int, int]](t)(Register[int, int](m, "kid", DependsOn("root"),
		Builder(func(context.Context) (map[int]int, error) {
			n := root.Len()
			return map[int]int{-1: n}, nil
		})))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				root.Set(g*1000+i, i)
				kid.Set(i, g)
				kid.Get(i - 1)
				for range kid.All() {
					break
				}
				if i%50 == 0 {
					_ = root.Invalidate(ctx)
				}
				if i%20 == 0 {
					_ = m.SaveDue(ctx)
					_ = kid.Save(ctx)
					clk.Advance(time.Minute)
				}
			}
		})
	}
	wg.Wait()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLookup(t *testing.T) {
	m := newTestManager(t, newMem(t), newClock())
	c := must[*Cache[string, int]](t)(Register[string, int](m, "c"))
	if got, ok := Lookup[string, int](m, "c"); !ok || got != c {
		t.Fatal("Lookup did not find c")
	}
	if _, ok := Lookup[string, string](m, "c"); ok {
		t.Fatal("Lookup with the wrong types found c")
	}
	if _, ok := Lookup[string, int](m, "missing"); ok {
		t.Fatal("Lookup found a missing cache")
	}
}

// TestUnusedCachesWriteNothing: autosync and Close save only what was loaded and
// changed; a registered, unused cache costs no I/O.
func TestUnusedCachesWriteNothing(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	m := newTestManager(t, st, clk)
	must[*Cache[string, int]](t)(Register[string, int](m, "unused"))
	read := must[*Cache[string, int]](t)(Register[string, int](m, "read"))
	read.Get("x")
	clk.Advance(time.Hour)
	if err := m.SaveDue(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Len() != 0 {
		t.Fatalf("%d entries written for caches that did not change", st.Len())
	}
}
