package named_test

import (
	"context"
	"fmt"
	"log"
	"maps"
	"slices"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/named"
	"github.com/cachier-go/cachier/store/memstore"
)

// A simple cache: what one manager saves, the next one (a restart) loads.
func Example() {
	ctx := context.Background()
	st := memstore.New(nil) // a filestore keeps caches across restarts
	defer st.Close()

	m, err := named.NewManager(st, &named.Options{Name: "example"})
	if err != nil {
		log.Fatal(err)
	}
	cache, err := named.Register[string, string](m, "my_simple_cache")
	if err != nil {
		log.Fatal(err)
	}
	v, ok := cache.Get("my_key")
	fmt.Printf("%q %v\n", v, ok)
	cache.Set("my_key", "my_value")
	if err := m.Close(ctx); err != nil { // saves what changed
		log.Fatal(err)
	}

	m2, err := named.NewManager(st, &named.Options{Name: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer m2.Close(ctx)
	again, err := named.Register[string, string](m2, "my_simple_cache")
	if err != nil {
		log.Fatal(err)
	}
	v, ok = again.Get("my_key")
	fmt.Printf("%q %v\n", v, ok)
	// Output:
	// "" false
	// "my_value" true
}

// Dependent caches: invalidating root empties edge, so edge's computed value is
// recomputed from the new raw value.
func Example_dependentCaches() {
	ctx := context.Background()
	st := memstore.New(nil)
	defer st.Close()
	m, err := named.NewManager(st, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close(ctx)

	edge, err := named.Register[string, int](m, "edge_cache", named.DependsOn("root_cache"))
	if err != nil {
		log.Fatal(err)
	}
	root, err := named.Register[string, int](m, "root_cache")
	if err != nil {
		log.Fatal(err)
	}
	processed := func() int {
		if v, ok := edge.Get("processed"); ok {
			return v
		}
		raw, _ := root.Get("raw")
		edge.Set("processed", raw*5)
		return raw * 5
	}

	fmt.Println(processed()) // no raw value yet
	root.Set("raw", 1)
	fmt.Println(processed()) // still cached in edge
	if err := root.Invalidate(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(edge.Len()) // emptied with its parent
	root.Set("raw", 1)
	fmt.Println(processed())
	fmt.Println(maps.Collect(edge.All()))
	// Output:
	// 0
	// 0
	// 0
	// 5
	// map[processed:5]
}

// Custom saver and loader replace the store I/O, as in cacheman's README.
func Example_customSaverLoader() {
	ctx := context.Background()
	st := memstore.New(nil)
	defer st.Close()
	m, err := named.NewManager(st, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close(ctx)

	cache, err := named.Register[string, string](m, "my_cache",
		named.Saver(func(_ context.Context, name string, contents map[string]string) error {
			fmt.Printf("Save requested on %s cache content: %v\n", name, contents)
			return nil
		}),
		named.Loader(func(_ context.Context, name string) (map[string]string, error) {
			return map[string]string{"load": "faked"}, nil
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := cache.Save(ctx); err != nil {
		log.Fatal(err)
	}
	cache.Set("new", "real")
	if err := cache.Save(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// Save requested on my_cache cache content: map[load:faked]
	// Save requested on my_cache cache content: map[load:faked new:real]
}

// A builder fills a missing cache; a validator rejects a bad saved one.
func Example_builder() {
	ctx := context.Background()
	st := memstore.New(nil)
	defer st.Close()
	m, err := named.NewManager(st, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close(ctx)

	squares, err := named.Register[int, int](m, "squares",
		named.Builder(func(context.Context) (map[int]int, error) {
			fmt.Println("building")
			out := map[int]int{}
			for i := range 4 {
				out[i] = i * i
			}
			return out, nil
		}),
		named.Validator(func(m map[int]int) error {
			if len(m) == 0 {
				return fmt.Errorf("empty")
			}
			return nil
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(squares.Get(3))
	fmt.Println(squares.Len())
	// Output:
	// building
	// 9 true
	// 4
}

// Autosync saves a cache once enough changes have waited long enough. Here the
// example applies the rules itself (SyncInterval -1) on a clock it moves by hand;
// normally a background goroutine does it every second on the real clock.
func Example_autoSync() {
	ctx := context.Background()
	st := memstore.New(nil)
	defer st.Close()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m, err := named.NewManager(st, &named.Options{Clock: clk, SyncInterval: -1})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close(ctx)

	hits, err := named.Register[string, int](m, "hits",
		named.AutoSync(named.Rule{Changes: 3, After: time.Minute}))
	if err != nil {
		log.Fatal(err)
	}
	for _, page := range []string{"/", "/about", "/"} {
		n, _ := hits.Get(page)
		hits.Set(page, n+1)
	}
	_ = m.SaveDue(ctx)
	fmt.Println("unsaved after 0s:", hits.Dirty())
	clk.Advance(time.Minute)
	_ = m.SaveDue(ctx)
	fmt.Println("unsaved after 60s:", hits.Dirty())
	fmt.Println(slices.Sorted(maps.Keys(maps.Collect(hits.All()))))
	// Output:
	// unsaved after 0s: 3
	// unsaved after 60s: 0
	// [/ /about]
}
