package named_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/cachier-go/cachier/named"
	"github.com/cachier-go/cachier/store/memstore"
)

// Deregister removes a cache, alone or with the caches that depend on it.
func ExampleManager_Deregister() {
	ctx := context.Background()
	m, err := named.NewManager(memstore.New(nil), &named.Options{Name: "dereg", SyncInterval: -1})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close(ctx)
	named.Register[string, int](m, "orgs")
	named.Register[string, int](m, "users", named.DependsOn("orgs"))
	named.Register[string, int](m, "settings")

	_, err = m.Deregister("orgs", false)
	fmt.Println(err != nil) // users depends on orgs
	removed, _ := m.Deregister("orgs", true)
	fmt.Println(removed, m.Names())
	fmt.Println(m.DeregisterAll(), m.Names())
	// Output:
	// true
	// [orgs users] [settings]
	// [settings] []
}

// BeforeSave and AfterLoad transform the map around saving and loading; DeleteSaved
// drops the saved copy and keeps the map in memory.
func ExampleBeforeSave() {
	ctx := context.Background()
	st := memstore.New(nil)
	upper := named.BeforeSave(func(_ context.Context, _ string, m map[string]string) (map[string]string, error) {
		for k, v := range m {
			m[k] = strings.ToUpper(v) // the saved copy only
		}
		return m, nil
	})
	m, _ := named.NewManager(st, &named.Options{Name: "hooks", SyncInterval: -1})
	c, _ := named.Register[string, string](m, "greetings", upper)
	c.Set("en", "hello")
	c.Save(ctx)
	v, _ := c.Get("en")
	fmt.Println("in memory:", v)

	m2, _ := named.NewManager(st, &named.Options{Name: "hooks", SyncInterval: -1})
	c2, _ := named.Register[string, string](m2, "greetings")
	v, _ = c2.Get("en")
	fmt.Println("loaded:", v)

	c2.DeleteSaved(ctx)
	v, _ = c2.Get("en")
	fmt.Println("still in memory:", v)
	m3, _ := named.NewManager(st, &named.Options{Name: "hooks", SyncInterval: -1})
	c3, _ := named.Register[string, string](m3, "greetings")
	fmt.Println("saved copies:", c3.Len())
	// Output:
	// in memory: hello
	// loaded: HELLO
	// still in memory: HELLO
	// saved copies: 0
}
