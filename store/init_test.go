package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cachier-go/cachier/store"
)

// Init runs the set-up until it succeeds, then never again until Reset; a caller
// waiting for a running set-up gives up with its context.
func TestInit(t *testing.T) {
	ctx := context.Background()
	var in store.Init
	runs := 0
	fail := errors.New("no bucket")
	setup := func(err error) func() error { return func() error { runs++; return err } }
	if err := in.Do(ctx, setup(fail)); err != fail {
		t.Fatalf("first Do = %v, want the set-up's error", err)
	}
	for range 2 {
		if err := in.Do(ctx, setup(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if runs != 2 {
		t.Fatalf("%d runs, want 2: a failure is run again, a success is not", runs)
	}
	in.Reset()
	if err := in.Do(ctx, setup(nil)); err != nil || runs != 3 {
		t.Fatalf("after Reset: %v, %d runs; want a third run", err, runs)
	}

	var slow store.Init
	started, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- slow.Do(ctx, func() error { close(started); <-release; return nil })
	}()
	<-started
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := slow.Do(cctx, setup(nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do while another runs, under a done context: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := slow.Do(ctx, func() error { t.Error("ran again after a success"); return nil }); err != nil {
		t.Fatal(err)
	}
}
