package clock_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
)

func TestFakeTimersFireInOrder(t *testing.T) {
	f := clock.NewFake(time.Unix(1000, 0))
	a := f.NewTimer(2 * time.Second)
	b := f.NewTimer(time.Second)
	f.Advance(time.Second)
	select {
	case <-b.C():
	default:
		t.Fatal("timer due at 1s did not fire at 1s")
	}
	select {
	case <-a.C():
		t.Fatal("timer due at 2s fired at 1s")
	default:
	}
	f.Advance(time.Second)
	<-a.C()
	if got := f.Timers(); got != 0 {
		t.Fatalf("Timers() = %d after both fired, want 0", got)
	}
}

func TestFakeAfterFuncAndBlockUntil(t *testing.T) {
	f := clock.NewFake(time.Unix(0, 0))
	var ran atomic.Bool
	done := make(chan struct{})
	go func() {
		f.AfterFunc(time.Minute, func() { ran.Store(true); close(done) })
	}()
	if err := f.BlockUntil(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Minute)
	<-done
	if !ran.Load() {
		t.Fatal("AfterFunc did not run")
	}
}

func TestFakeStopAndBackwardStep(t *testing.T) {
	f := clock.NewFake(time.Unix(100, 0))
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}
	f.Advance(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	f.Set(time.Unix(50, 0))
	if got := f.Now(); !got.Equal(time.Unix(50, 0)) {
		t.Fatalf("Now() = %v after Set backward", got)
	}
}
