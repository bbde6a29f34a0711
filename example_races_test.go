package cachier_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store/memstore"
)

// Two machines share a store; the writer's clock runs 10s fast. Its entry, really a
// second old, is stamped 9s in the future: beyond MaxClockSkew, so its age is unknown
// and MaxAge(500ms) does not take it as fresh.
func ExampleMaxClockSkew() {
	st := memstore.New(nil)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	square := func(_ context.Context, x int) (int, error) { return x * x, nil }
	wrap := func(c cachier.Clock) *cachier.Func[int, int] {
		f, err := cachier.Wrap(square, cachier.Name("example/skew"), cachier.WithStore(st), cachier.WithClock(c))
		if err != nil {
			log.Fatal(err)
		}
		return f
	}
	writer := wrap(clock.NewFake(now.Add(10 * time.Second)))
	reader := wrap(clock.NewFake(now.Add(time.Second)))
	ctx := context.Background()
	writer.Call(ctx, 3)
	reader.Call(ctx, 3, cachier.MaxAge(500*time.Millisecond), cachier.MaxClockSkew(time.Minute))
	fmt.Println("trusting a minute of skew, hits:", reader.Stats().Hits, "computations:", reader.Stats().Computations)
	reader.Call(ctx, 3, cachier.MaxAge(500*time.Millisecond))
	fmt.Println("with the default 1s, hits:", reader.Stats().Hits, "computations:", reader.Stats().Computations)
	// Output:
	// trusting a minute of skew, hits: 1 computations: 0
	// with the default 1s, hits: 1 computations: 1
}

func explode(_ context.Context, x int) (int, error) { panic("no such row") }

// A panic in the function reaches the caller that ran it as a *PanicError, with the
// stack where the panic happened (the function runs on a goroutine of its own).
func ExamplePanicError() {
	f, err := cachier.Wrap(explode, cachier.WithStore(memstore.New(nil)))
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		pe, ok := recover().(*cachier.PanicError)
		fmt.Println(ok, pe.Value, errors.Is(pe, cachier.ErrPanicked), strings.Contains(string(pe.Stack), "explode"))
	}()
	f.Call(context.Background(), 1)
	// Output:
	// true no such row true true
}
