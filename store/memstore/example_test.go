package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

func Example() {
	ctx := context.Background()
	// The driver is used through the portable layer, as cachier.WithStore does.
	s := store.Adapt(memstore.New(&memstore.Options{MaxEntries: 1000}))
	defer s.Close()

	k := store.Key{Namespace: "example.fetchReport", ID: "q=42"}
	if err := s.Set(ctx, k, store.Entry{Value: []byte("report 42"), StoredAt: time.Now()}); err != nil {
		log.Fatal(err)
	}
	e, err := s.Get(ctx, k)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(e.Value))

	// One owner computes; the others see the lease held.
	l, err := s.Acquire(ctx, k, store.Owner{Host: "a", Token: "t1"}, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	_, err = s.Acquire(ctx, k, store.Owner{Host: "b", Token: "t2"}, time.Minute)
	fmt.Println(err != nil && errors.Is(err, store.ErrLeaseHeld))
	_ = s.Release(ctx, l)

	_, err = s.Get(ctx, store.Key{Namespace: "example.fetchReport", ID: "q=43"})
	fmt.Println(errors.Is(err, store.ErrNotFound))
	// Output:
	// report 42
	// true
	// true
}

func Example_open() {
	s, err := store.Open(context.Background(), "mem://?max_entries=1000&max_bytes=64MiB")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	_, err = store.Open(context.Background(), "mem://?max_size=1")
	fmt.Println(errors.Is(err, store.ErrBadURL))
	fmt.Println(err)
	// Output:
	// true
	// store: bad URL: mem:?max_size=1: unknown parameter "max_size"; accepted: max_bytes, max_entries; use mem:// (bounded to 256MiB) or mem://?max_entries=N&max_bytes=SIZE (SIZE in bytes, or with a suffix KB, MB, GB, KiB, MiB, GiB; max_bytes=0 for no bound)
}
