package named

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
)

// TestSaverWithoutLoader checks that a cache with a Saver and no Loader does not
// report its own saved marker as corrupt.
func TestSaverWithoutLoader(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	saved := 0
	saver := Saver(func(_ context.Context, _ string, m map[string]int) error { saved = len(m); return nil })
	a := newTestManager(t, st, clk)
	ca := must[*Cache[string, int]](t)(Register[string, int](a, "kept", saver))
	ca.Set("x", 1)
	if err := ca.Save(ctx); err != nil || saved != 1 {
		t.Fatalf("save: %v, saved %d", err, saved)
	}
	b := newTestManager(t, st, clk)
	cb := must[*Cache[string, int]](t)(Register[string, int](b, "kept", saver))
	if err := cb.Load(ctx); err != nil {
		t.Fatalf("load reported a problem: %v", err)
	}
	if s := cb.Stats(); s.Corrupt != 0 {
		t.Fatalf("the cache's own marker counted as corrupt: %+v", s)
	}
}

// TestUndeclaredAncestors checks that a reader that did not declare DependsOn still
// honours the ancestors recorded in the saved map, at load and afterwards.
func TestUndeclaredAncestors(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	w := newTestManager(t, st, clk)
	child := must[*Cache[string, int]](t)(Register[string, int](w, "child", DependsOn("parent")))
	child.Set("k", 1)
	if err := child.Save(ctx); err != nil {
		t.Fatal(err)
	}
	// A reader without DependsOn loads it while the parent is unchanged...
	r := newTestManager(t, st, clk)
	rc := must[*Cache[string, int]](t)(Register[string, int](r, "child"))
	if v, ok := rc.Get("k"); !ok || v != 1 {
		t.Fatal("the reader did not load the saved map")
	}
	// ...and notices the parent's invalidation at its next check.
	if err := w.Invalidate(ctx, "parent"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if _, ok := rc.Get("k"); ok {
		t.Fatal("the reader kept a map whose undeclared ancestor was invalidated")
	}
	// A fresh reader does not load the stale saved map.
	child.Set("k", 2) // w's map was dropped; this starts a new one under the new counter
	r2 := newTestManager(t, st, clk)
	rc2 := must[*Cache[string, int]](t)(Register[string, int](r2, "child"))
	w2 := newTestManager(t, st, clk)
	wc2 := must[*Cache[string, int]](t)(Register[string, int](w2, "child", DependsOn("parent")))
	wc2.Set("k", 3)
	if err := wc2.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w2.Invalidate(ctx, "parent"); err != nil {
		t.Fatal(err)
	}
	if _, ok := rc2.Get("k"); ok || rc2.Stats().Stale != 1 {
		t.Fatalf("a reader without DependsOn loaded a map saved before its ancestor's invalidation: %+v", rc2.Stats())
	}
}

// TestDeregister checks Deregister alone, with dependents, and DeregisterAll.
func TestDeregister(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	m := newTestManager(t, st, clk)
	must[*Cache[string, int]](t)(Register[string, int](m, "root"))
	must[*Cache[string, int]](t)(Register[string, int](m, "mid", DependsOn("root")))
	leaf := must[*Cache[string, int]](t)(Register[string, int](m, "leaf", DependsOn("mid")))
	must[*Cache[string, int]](t)(Register[string, int](m, "other"))
	if _, err := m.Deregister("root", false); !errors.Is(err, ErrHasDependents) || !strings.Contains(err.Error(), "mid") {
		t.Fatalf("Deregister of a cache with dependents: %v", err)
	}
	if _, err := m.Deregister("nope", false); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("Deregister of an unknown cache: %v", err)
	}
	got, err := m.Deregister("leaf", false)
	if err != nil || !slices.Equal(got, []string{"leaf"}) {
		t.Fatalf("Deregister(leaf) = %v, %v", got, err)
	}
	if _, ok := Lookup[string, int](m, "leaf"); ok {
		t.Fatal("a deregistered cache is still found")
	}
	leaf.Set("unsaved", 1)
	if err := m.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if leaf.Stats().Saves != 0 {
		t.Fatal("the manager saved a deregistered cache")
	}
	if _, err := Register[string, int](m, "leaf", DependsOn("mid")); err != nil {
		t.Fatalf("the name cannot be registered again: %v", err)
	}
	got, err = m.Deregister("root", true)
	if err != nil || !slices.Equal(got, []string{"root", "mid", "leaf"}) {
		t.Fatalf("Deregister(root, with dependents) = %v, %v", got, err)
	}
	if names := m.Names(); !slices.Equal(names, []string{"other"}) {
		t.Fatalf("left: %v", names)
	}
	if all := m.DeregisterAll(); !slices.Equal(all, []string{"other"}) || len(m.Names()) != 0 {
		t.Fatalf("DeregisterAll = %v, left %v", all, m.Names())
	}
}

// TestDeleteSaved checks that DeleteSaved removes the saved copy and keeps the map.
func TestDeleteSaved(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	deleted := 0
	m := newTestManager(t, st, clk)
	c := must[*Cache[string, int]](t)(Register[string, int](m, "c", Deleter(func(context.Context, string) error { deleted++; return nil })))
	c.Set("k", 1)
	if err := c.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSaved(ctx); err != nil || deleted != 1 {
		t.Fatalf("DeleteSaved: %v, deleter ran %d times", err, deleted)
	}
	if v, ok := c.Get("k"); !ok || v != 1 {
		t.Fatal("DeleteSaved dropped the in-memory map")
	}
	other := newTestManager(t, st, clk)
	oc := must[*Cache[string, int]](t)(Register[string, int](other, "c"))
	if oc.Len() != 0 {
		t.Fatal("the saved copy is still there")
	}
}

// TestSaveLoadHooks checks BeforeSave and AfterLoad around the store's own saving.
func TestSaveLoadHooks(t *testing.T) {
	ctx := context.Background()
	st, clk := newMem(t), newClock()
	before := BeforeSave(func(_ context.Context, name string, m map[string]int) (map[string]int, error) {
		delete(m, "secret") // not saved
		m["saved-by"] = len(name)
		return m, nil
	})
	after := AfterLoad(func(_ context.Context, _ string, m map[string]int) (map[string]int, error) {
		m["loaded"] = 1
		return m, nil
	})
	a := newTestManager(t, st, clk)
	ca := must[*Cache[string, int]](t)(Register[string, int](a, "hooked", before, after))
	ca.Set("secret", 42)
	ca.Set("k", 1)
	if err := ca.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := ca.Get("secret"); !ok {
		t.Fatal("BeforeSave changed the in-memory map")
	}
	b := newTestManager(t, st, clk)
	cb := must[*Cache[string, int]](t)(Register[string, int](b, "hooked", before, after))
	if _, ok := cb.Get("secret"); ok {
		t.Fatal("BeforeSave did not drop the entry from the saved map")
	}
	if v, _ := cb.Get("saved-by"); v != len("hooked") {
		t.Fatal("BeforeSave's map was not the one saved")
	}
	if v, _ := cb.Get("loaded"); v != 1 {
		t.Fatal("AfterLoad did not run on load")
	}
	// A failing AfterLoad makes the saved map count as missing.
	fail := AfterLoad(func(context.Context, string, map[string]int) (map[string]int, error) { return nil, errors.New("no") })
	c := newTestManager(t, st, clk)
	cc := must[*Cache[string, int]](t)(Register[string, int](c, "hooked", fail))
	if err := cc.Load(ctx); err == nil || cc.Len() != 0 || cc.Stats().LoadErrors != 1 {
		t.Fatalf("failing AfterLoad: %v, Len %d, %+v", err, cc.Len(), cc.Stats())
	}
	// Hooks of the wrong types are refused at Register.
	if _, err := Register[string, string](c, "typed", before); !errors.Is(err, ErrOption) {
		t.Fatalf("BeforeSave of the wrong type: %v", err)
	}
}

type withHidden struct {
	Name   string
	secret int
}

// TestRegisterRejectsMapsThatCannotLoadBack checks that a persistent cache whose map
// a built-in codec cannot load back as it was is refused at Register, saying what to
// do: an interface key saved without error and then loaded as corrupt (the whole map
// lost), and an unexported field was dropped by every save. A Saver, a cache in
// memory only and a codec of one's own are accepted.
func TestRegisterRejectsMapsThatCannotLoadBack(t *testing.T) {
	m := newTestManager(t, newMem(t), newClock())
	for name, err := range map[string]error{
		"any-keys":   func() error { _, err := Register[any, int](m, "any-keys"); return err }(),
		"any-values": func() error { _, err := Register[string, []any](m, "any-values"); return err }(),
		"unexported": func() error {
			_, err := Register[string, withHidden](m, "unexported", WithCodec(cachier.JSON))
			return err
		}(),
	} {
		if !errors.Is(err, ErrOption) || !strings.Contains(err.Error(), "Persistent(false)") {
			t.Errorf("%s: Register = %v, want ErrOption saying what to do", name, err)
		}
	}
	saver := Saver(func(context.Context, string, map[any]int) error { return nil })
	for name, opts := range map[string][]Option{
		"saver":     {saver},
		"in memory": {Persistent(false)},
		"own codec": {WithCodec(rawCodec{})},
	} {
		if _, err := Register[any, int](m, "ok-"+strings.ReplaceAll(name, " ", "-"), opts...); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// rawCodec is a codec of the user's own; it is never called here.
type rawCodec struct{}

func (rawCodec) Marshal(any) ([]byte, error) { return nil, errors.ErrUnsupported }
func (rawCodec) Unmarshal([]byte, any) error { return errors.ErrUnsupported }
