package cachier_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

// The book store from easy_cache's README: a user's favourite books are cached with
// one tag per book, so that editing a book drops every list that contains it, in
// every process sharing the store, at the cost of one counter bump.
func ExampleResultTags() {
	st := memstore.New(nil)
	titles := map[int]string{1: "Dune", 2: "Emma"}
	favourites := func(_ context.Context, user string) ([]string, error) {
		fmt.Println("loading favourites of", user)
		ids := map[string][]int{"ann": {1, 2}, "bob": {1}}[user]
		var out []string
		for _, id := range ids {
			out = append(out, fmt.Sprintf("%d:%s", id, titles[id]))
		}
		return out, nil
	}
	f, _ := cachier.Wrap(favourites, cachier.Name("favourites"), cachier.WithStore(st),
		cachier.ResultTags(func(_ string, books []string) []string {
			tags := make([]string, len(books))
			for i, b := range books {
				tags[i] = "book:" + strings.SplitN(b, ":", 2)[0]
			}
			return tags
		}))
	ctx := context.Background()
	f.Call(ctx, "ann")
	f.Call(ctx, "bob")

	titles[2] = "Emma (annotated)"
	_ = cachier.InvalidateTags(ctx, st, "book:2") // only lists with book 2 are dropped

	ann, _ := f.Call(ctx, "ann")
	bob, _ := f.Call(ctx, "bob")
	fmt.Println(ann, bob)
	// Output:
	// loading favourites of ann
	// loading favourites of bob
	// loading favourites of ann
	// [1:Dune 2:Emma (annotated)] [1:Dune]
}

// The shop from easy_cache's README: every product key starts with its shop's
// prefix, and the prefix works as a tag.
func ExamplePrefix() {
	type Item struct{ Shop, ID int }
	st := memstore.New(nil)
	price := func(_ context.Context, it Item) (int, error) {
		fmt.Println("pricing", it)
		return it.Shop*100 + it.ID, nil
	}
	f, _ := cachier.Wrap(price, cachier.Name("price"), cachier.WithStore(st),
		cachier.Prefix(func(it Item) string { return fmt.Sprintf("shop:%d", it.Shop) }))
	ctx := context.Background()
	f.Call(ctx, Item{1, 1})
	f.Call(ctx, Item{2, 1})
	_ = f.InvalidatePrefix(ctx, Item{Shop: 1}) // or cachier.InvalidatePrefix(ctx, st, "shop:1")
	f.Call(ctx, Item{1, 1})
	f.Call(ctx, Item{2, 1})
	// Output:
	// pricing {1 1}
	// pricing {2 1}
	// pricing {1 1}
}

// Dependent caches, as in cacheman: clearing a parent invalidates its dependents,
// transitively, in every process sharing the store.
func ExampleDependsOn() {
	st := memstore.New(nil)
	rates := func(_ context.Context, currency string) (float64, error) {
		fmt.Println("fetching rate", currency)
		return 1.1, nil
	}
	r, _ := cachier.Wrap(rates, cachier.Name("rates"), cachier.WithStore(st))
	prices := func(ctx context.Context, currency string) (float64, error) {
		fmt.Println("computing prices", currency)
		rate, err := r.Call(ctx, currency)
		return 10 * rate, err
	}
	p, _ := cachier.Wrap(prices, cachier.Name("prices"), cachier.WithStore(st), cachier.DependsOn(r))
	ctx := context.Background()
	p.Call(ctx, "EUR")
	p.Call(ctx, "EUR")
	_ = r.Clear(ctx) // new rates: prices computed from the old ones go too
	p.Call(ctx, "EUR")
	// Output:
	// computing prices EUR
	// fetching rate EUR
	// computing prices EUR
	// fetching rate EUR
}
