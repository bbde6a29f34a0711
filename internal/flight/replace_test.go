package flight

import (
	"context"
	"errors"
	"testing"
)

// Replace starts a run that later callers join, hands it the run it replaced, and
// leaves that run to the callers that had joined it.
func TestReplace(t *testing.T) {
	var g Group[int]
	hold := make(chan struct{})
	old, leader := g.Join(context.Background(), "k", func() (int, error) { <-hold; return 1, nil }, nil)
	if !leader {
		t.Fatal("first Join did not lead")
	}
	var gotPrev *Call[int]
	c := g.Replace(context.Background(), "k", func(prev *Call[int]) (int, error) {
		gotPrev = prev
		<-prev.Done()
		return 2, nil
	}, nil)
	later, leader := g.Join(context.Background(), "k", func() (int, error) { return 3, nil }, nil)
	if leader || later != c {
		t.Fatal("a Join after Replace did not join the new run")
	}
	close(hold)
	<-old.Done()
	<-c.Done()
	if v, _ := old.Result(); v != 1 {
		t.Fatalf("old run = %d", v)
	}
	if v, _ := c.Result(); v != 2 || gotPrev != old {
		t.Fatalf("new run = %d, prev %v", v, gotPrev)
	}
	old.Leave()
	c.Leave()
	later.Leave()
	if g.Current("k") != nil {
		t.Fatal("a finished run is still current")
	}
}

// Forget detaches a run: the next Join starts another, and the forgotten one's end
// does not remove the new one.
func TestForget(t *testing.T) {
	var g Group[int]
	hold := make(chan struct{})
	a, _ := g.Join(context.Background(), "k", func() (int, error) { <-hold; return 1, nil }, nil)
	g.Forget("k")
	hold2 := make(chan struct{})
	b, leader := g.Join(context.Background(), "k", func() (int, error) { <-hold2; return 2, nil }, nil)
	if !leader || a == b {
		t.Fatal("Join after Forget joined the forgotten run")
	}
	close(hold)
	<-a.Done()
	if g.Current("k") != b {
		t.Fatal("the forgotten run's end removed the new run")
	}
	close(hold2)
	<-b.Done()
}

// A *PanicError re-raised inside a run keeps its stack.
func TestRepanicKeepsStack(t *testing.T) {
	var g Group[int]
	orig := &PanicError{Value: "x", Stack: []byte("original stack")}
	c, _ := g.Join(context.Background(), "k", func() (int, error) { panic(orig) }, nil)
	<-c.Done()
	_, err := c.Result()
	var pe *PanicError
	if !errors.As(err, &pe) || string(pe.Stack) != "original stack" {
		t.Fatalf("got %v", err)
	}
}
