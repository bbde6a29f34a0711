package cachier_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store/memstore"
)

type Point struct{ X, Y int }

func distance(_ context.Context, p Point) (int, error) {
	fmt.Println("computing", p)
	return p.X*p.X + p.Y*p.Y, nil
}

func ExampleWrap() {
	f, err := cachier.Wrap(distance, cachier.WithStore(memstore.New(nil)))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		d, _ := f.Call(ctx, Point{3, 4})
		fmt.Println(d)
	}
	fmt.Println("hits:", f.Stats().Hits)
	// Output:
	// computing {3 4}
	// 25
	// 25
	// hits: 1
}

func square(n int) int { return n * n }

func ExampleWrapPure() {
	f, err := cachier.WrapPure(square, cachier.WithStore(memstore.New(nil)))
	if err != nil {
		log.Fatal(err)
	}
	v, _ := f.Call(context.Background(), 12)
	fmt.Println(v)
	// Output: 144
}

func ExampleFunc_Call_perCallOptions() {
	f, _ := cachier.Wrap(distance, cachier.WithStore(memstore.New(nil)), cachier.StaleAfter(time.Hour))
	ctx := context.Background()
	f.Call(ctx, Point{1, 1})
	f.Call(ctx, Point{1, 1}, cachier.MaxAge(-1))  // this caller wants a new result
	f.Call(ctx, Point{1, 1}, cachier.SkipCache()) // this one bypasses the cache
	f.Call(ctx, Point{1, 1})                      // a hit on the result stored by MaxAge(-1)
	s := f.Stats()
	fmt.Println(s.Computations, s.Hits, s.SkippedCalls)
	// Output:
	// computing {1 1}
	// computing {1 1}
	// computing {1 1}
	// 3 1 1
}

func ExampleWithKey() {
	type User struct {
		ID   int
		Name string // not part of the key
	}
	greet := func(_ context.Context, u User) (string, error) { return "hello " + u.Name, nil }
	f, _ := cachier.Wrap(greet,
		cachier.Name("greet"), // an anonymous function needs a name
		cachier.WithStore(memstore.New(nil)),
		cachier.WithKey(func(u User) (string, error) { return fmt.Sprintf("user:%d", u.ID), nil }))
	ctx := context.Background()
	a, _ := f.Call(ctx, User{ID: 7, Name: "Ann"})
	b, _ := f.Call(ctx, User{ID: 7, Name: "Annie"}) // same key: the stored greeting
	k, _ := f.Key(User{ID: 7})
	fmt.Println(a, "|", b, "|", k)
	// Output: hello Ann | hello Ann | greet/user:7
}

func ExampleFunc_Precache() {
	f, _ := cachier.Wrap(distance, cachier.WithStore(memstore.New(nil)))
	ctx := context.Background()
	_ = f.Precache(ctx, Point{6, 8}, 100)
	d, _ := f.Call(ctx, Point{6, 8}) // served from the cache, distance does not run
	fmt.Println(d)
	// Output: 100
}
