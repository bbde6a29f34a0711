package cachier_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

// versionedStores are the stores without a server that keep version counters.
func versionedStores(t *testing.T, run func(t *testing.T, st store.Store)) {
	t.Run("mem", func(t *testing.T) { run(t, store.Adapt(memstore.New(nil))) })
	t.Run("file", func(t *testing.T) {
		st := newFileStore(t)
		if _, ok := any(st).(store.Versioner); !ok {
			t.Skip("filestore has no version counters yet")
		}
		run(t, st)
	})
}

type Book struct {
	ID    int
	Title string
}

func TestTagsFromResultDropEveryListWithTheBook(t *testing.T) {
	versionedStores(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		books := map[int]string{1: "Dune", 2: "Emma", 3: "Ulysses"}
		favourites := map[string][]int{"ann": {1, 2}, "bob": {2, 3}, "cy": {3}}
		var calls atomic.Int64
		fn := func(_ context.Context, user string) ([]Book, error) {
			calls.Add(1)
			var out []Book
			for _, id := range favourites[user] {
				out = append(out, Book{id, books[id]})
			}
			return out, nil
		}
		f, err := cachier.Wrap(fn, cachier.Name("favourite-books"), cachier.WithStore(st),
			cachier.ResultTags(func(_ string, bs []Book) []string {
				var tags []string
				for _, b := range bs {
					tags = append(tags, fmt.Sprintf("book:%d", b.ID))
				}
				return tags
			}))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"ann", "bob", "cy", "ann", "bob", "cy"} {
			f.Call(ctx, u)
		}
		if calls.Load() != 3 {
			t.Fatalf("%d computations before invalidation, want 3", calls.Load())
		}
		books[2] = "Emma (2nd ed.)"
		if err := cachier.InvalidateTags(ctx, st, "book:2"); err != nil {
			t.Fatal(err)
		}
		ann, _ := f.Call(ctx, "ann")
		f.Call(ctx, "bob")
		f.Call(ctx, "cy")
		if calls.Load() != 5 {
			t.Fatalf("%d computations: ann and bob carry book:2 and must recompute, cy must not", calls.Load())
		}
		if ann[1].Title != "Emma (2nd ed.)" {
			t.Fatalf("ann got %+v", ann)
		}
		if f.Stats().Invalidated != 2 {
			t.Fatalf("stats %+v", f.Stats())
		}
	})
}

func TestTagsAcrossFunctions(t *testing.T) {
	versionedStores(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		var a, b atomic.Int64
		fa, _ := cachier.Wrap(func(_ context.Context, id int) (int, error) { return int(a.Add(1)), nil },
			cachier.Name("a"), cachier.WithStore(st), cachier.TagsOf(func(id int) []string { return []string{fmt.Sprint("user:", id)} }))
		fb, _ := cachier.Wrap(func(_ context.Context, id int) (int, error) { return int(b.Add(1)), nil },
			cachier.Name("b"), cachier.WithStore(st), cachier.Tags("users"), cachier.TagsOf(func(id int) []string { return []string{fmt.Sprint("user:", id)} }))
		for range 2 {
			fa.Call(ctx, 1)
			fa.Call(ctx, 2)
			fb.Call(ctx, 1)
		}
		if err := fa.InvalidateTags(ctx, 1); err != nil { // bumps user:1, for both functions
			t.Fatal(err)
		}
		fa.Call(ctx, 1)
		fa.Call(ctx, 2)
		fb.Call(ctx, 1)
		if a.Load() != 3 || b.Load() != 2 {
			t.Fatalf("computations a=%d b=%d, want 3 and 2", a.Load(), b.Load())
		}
		if err := cachier.InvalidateTags(ctx, st, "users"); err != nil { // static tag of b
			t.Fatal(err)
		}
		fa.Call(ctx, 1)
		fb.Call(ctx, 1)
		if a.Load() != 3 || b.Load() != 3 {
			t.Fatalf("static tag: computations a=%d b=%d, want 3 and 3", a.Load(), b.Load())
		}
	})
}

type Product struct {
	Shop, ID int
}

func TestPrefix(t *testing.T) {
	versionedStores(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		var n atomic.Int64
		f, err := cachier.Wrap(func(_ context.Context, p Product) (int, error) { return int(n.Add(1)), nil },
			cachier.Name("products"), cachier.WithStore(st),
			cachier.Prefix(func(p Product) string { return fmt.Sprint("shop:", p.Shop) }))
		if err != nil {
			t.Fatal(err)
		}
		k, _ := f.Key(Product{7, 1})
		if got := k.ID[:9]; got != "@6:shop:7" {
			t.Fatalf("key %q does not start with the prefix", k.ID)
		}
		for range 2 {
			f.Call(ctx, Product{7, 1})
			f.Call(ctx, Product{7, 2})
			f.Call(ctx, Product{8, 1})
		}
		if err := f.InvalidatePrefix(ctx, Product{Shop: 7}); err != nil {
			t.Fatal(err)
		}
		f.Call(ctx, Product{7, 1})
		f.Call(ctx, Product{7, 2})
		f.Call(ctx, Product{8, 1})
		if n.Load() != 5 {
			t.Fatalf("%d computations, want 3 + 2 for shop 7", n.Load())
		}
		if err := cachier.InvalidatePrefix(ctx, st, "shop:8"); err != nil {
			t.Fatal(err)
		}
		f.Call(ctx, Product{8, 1})
		if n.Load() != 6 {
			t.Fatalf("standalone InvalidatePrefix: %d computations", n.Load())
		}
		// A prefix also works as a tag (easy_cache; the README says so).
		if err := cachier.InvalidateTags(ctx, st, "shop:8"); err != nil {
			t.Fatal(err)
		}
		f.Call(ctx, Product{8, 1})
		f.Call(ctx, Product{7, 1})
		if n.Load() != 7 {
			t.Fatalf("InvalidateTags with a prefix: %d computations, want 7 (shop 8 recomputed, shop 7 a hit)", n.Load())
		}
	})
}

// TestKeysInjective: whatever strings a key function and Prefix return, two
// different arguments never share a key (issue 10, finding 3).
func TestKeysInjective(t *testing.T) {
	st := memstore.New(nil)
	ctx := context.Background()
	long := strings.Repeat("x", store.MaxIDLen+1)
	sum := sha256.Sum256([]byte(long))
	planted := "sha256:" + hex.EncodeToString(sum[:])
	for _, pair := range [][2]string{
		{long, planted}, // a long key and the string it used to hash to
		{"a\x00b", "sha256:" + hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte("a\x00b")); return s[:] }())},
		{"\xff", "sha256:" + hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte("\xff")); return s[:] }())},
		{long, "#" + hex.EncodeToString(sum[:])},
		{"=a", "a"},
		{strings.Repeat("ab", 32), "=" + strings.Repeat("ab", 32)},
	} {
		f, err := cachier.Wrap(func(_ context.Context, s string) (string, error) { return "v:" + s, nil },
			cachier.Name("injective"), cachier.WithStore(st),
			cachier.WithKey(func(s string) (string, error) { return s, nil }))
		if err != nil {
			t.Fatal(err)
		}
		k0, err0 := f.Key(pair[0])
		k1, err1 := f.Key(pair[1])
		if err0 != nil || err1 != nil {
			t.Fatal(err0, err1)
		}
		if k0 == k1 {
			t.Errorf("keys %.40q and %.40q share the ID %q", pair[0], pair[1], k0.ID)
		}
		if err := f.Clear(ctx); err != nil {
			t.Fatal(err)
		}
		if v, _ := f.Call(ctx, pair[0]); v != "v:"+pair[0] {
			t.Fatalf("first call: %.40q", v)
		}
		if v, _ := f.Call(ctx, pair[1]); v != "v:"+pair[1] {
			t.Errorf("key %.40q read the result of %.40q: %.40q", pair[1], pair[0], v)
		}
	}

	// Prefix and ID are unambiguous.
	type arg struct{ P, K string }
	f, err := cachier.Wrap(func(_ context.Context, a arg) (string, error) { return a.P + "|" + a.K, nil },
		cachier.Name("injective-prefix"), cachier.WithStore(st),
		cachier.WithKey(func(a arg) (string, error) { return a.K, nil }),
		cachier.Prefix(func(a arg) string { return a.P }))
	if err != nil {
		t.Fatal(err)
	}
	a, b := arg{"shop:1:x", "y"}, arg{"shop:1", "x:y"}
	ka, _ := f.Key(a)
	kb, _ := f.Key(b)
	if ka == kb {
		t.Fatalf("prefix %q + %q and %q + %q share the ID %q", a.P, a.K, b.P, b.K, ka.ID)
	}
	f.Call(ctx, a)
	if v, _ := f.Call(ctx, b); v != "shop:1|x:y" {
		t.Fatalf("got %q, the result of the other prefix", v)
	}
}

func TestStaleAfterFunc(t *testing.T) {
	clock := newClock()
	var n atomic.Int64
	fn := func(_ context.Context, vip bool) (int, error) { return int(n.Add(1)), nil }
	f, _ := cachier.Wrap(fn, cachier.Name("dynttl"), cachier.WithStore(memstore.New(nil)), cachier.WithClock(clock),
		cachier.StaleAfter(time.Hour),
		cachier.StaleAfterFunc(func(vip bool, _ int) time.Duration {
			if vip {
				return time.Minute
			}
			return 0 // the function's StaleAfter
		}))
	ctx := context.Background()
	f.Call(ctx, true)
	f.Call(ctx, false)
	clock.Advance(2 * time.Minute)
	f.Call(ctx, true)  // stale after its own minute
	f.Call(ctx, false) // fresh for an hour
	if n.Load() != 3 {
		t.Fatalf("%d computations, want 3", n.Load())
	}
}

func TestDependsOnTransitively(t *testing.T) {
	versionedStores(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		var calls [3]atomic.Int64
		mk := func(i int, name string, opts ...cachier.Option) *cachier.Func[int, int] {
			f, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return int(calls[i].Add(1)), nil },
				append([]cachier.Option{cachier.Name(name), cachier.WithStore(st)}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		grand := mk(0, "grand")
		parent := mk(1, "parent", cachier.DependsOn(grand))
		child := mk(2, "child", cachier.DependsOn(parent))
		all := func() {
			grand.Call(ctx, 1)
			parent.Call(ctx, 1)
			child.Call(ctx, 1)
		}
		all()
		all()
		if err := grand.Clear(ctx); err != nil { // drops grand's entries, and its dependents'
			t.Fatal(err)
		}
		all()
		if calls[0].Load() != 2 || calls[1].Load() != 2 || calls[2].Load() != 2 {
			t.Fatalf("after clearing the grandparent: %d %d %d computations, want 2 2 2", calls[0].Load(), calls[1].Load(), calls[2].Load())
		}
		if err := parent.Invalidate(ctx, 5); err != nil { // any invalidation of a parent reaches its dependents
			t.Fatal(err)
		}
		all()
		if calls[0].Load() != 2 || calls[1].Load() != 2 || calls[2].Load() != 3 {
			t.Fatalf("after invalidating the parent: %d %d %d computations, want 2 2 3", calls[0].Load(), calls[1].Load(), calls[2].Load())
		}
	})
}

func TestDependsOnItselfIsRejected(t *testing.T) {
	st := memstore.New(nil)
	a, _ := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x, nil }, cachier.Name("a"), cachier.WithStore(st))
	_, err := cachier.Wrap(func(_ context.Context, x int) (int, error) { return x, nil }, cachier.Name("a"), cachier.WithStore(st), cachier.DependsOn(a))
	if !errors.Is(err, cachier.ErrOption) {
		t.Fatalf("a function depending on its own namespace: %v", err)
	}
}

func TestTagOptionsCheckTypes(t *testing.T) {
	st := memstore.New(nil)
	_, err := cachier.Wrap(fetchReport, cachier.WithStore(st), cachier.TagsOf(func(s string) []string { return nil }))
	if !errors.Is(err, cachier.ErrOption) {
		t.Fatalf("TagsOf of the wrong argument type: %v", err)
	}
	_, err = cachier.Wrap(fetchReport, cachier.WithStore(st), cachier.ResultTags(func(q Query, r int) []string { return nil }))
	if !errors.Is(err, cachier.ErrOption) {
		t.Fatalf("ResultTags of the wrong result type: %v", err)
	}
}
