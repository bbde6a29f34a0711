package flight

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// The last caller to leave a run that has not ended calls its abandoned callback, once;
// leaving after the run ended does not.
func TestLeaveAbandons(t *testing.T) {
	var g Group[int]
	release := make(chan struct{})
	abandoned := make(chan struct{}, 2)
	fn := func() (int, error) { <-release; return 1, nil }
	a, leader := g.Join(context.Background(), "k", fn, func() { abandoned <- struct{}{} })
	b, joined := g.Join(context.Background(), "k", fn, nil)
	if !leader || joined || a != b {
		t.Fatalf("leader %v, second leader %v, same run %v", leader, joined, a == b)
	}
	a.Leave()
	select {
	case <-abandoned:
		t.Fatal("abandoned while a caller still waited")
	default:
	}
	b.Leave()
	<-abandoned
	close(release)
	<-a.Done()
	if v, err := a.Result(); v != 1 || err != nil {
		t.Fatalf("result %d, %v", v, err)
	}
	c, _ := g.Join(context.Background(), "k2", func() (int, error) { return 2, nil }, func() { abandoned <- struct{}{} })
	<-c.Done()
	c.Leave()
	select {
	case <-abandoned:
		t.Fatal("a run that ended was abandoned")
	default:
	}
}

// After ForgetAll a new caller starts its own run; the forgotten one still ends for
// its callers, and its end does not remove the new run.
func TestForgetAll(t *testing.T) {
	var g Group[int]
	stuck := make(chan struct{})
	old, _ := g.Join(context.Background(), "k", func() (int, error) { <-stuck; return 1, nil }, nil)
	g.ForgetAll()
	release := make(chan struct{})
	fresh, leader := g.Join(context.Background(), "k", func() (int, error) { <-release; return 2, nil }, nil)
	if !leader || fresh == old {
		t.Fatal("a caller after ForgetAll joined the forgotten run")
	}
	close(stuck)
	<-old.Done()
	again, leader := g.Join(context.Background(), "k", func() (int, error) { return 3, nil }, nil)
	if leader || again != fresh {
		t.Fatal("the forgotten run's end removed the new run")
	}
	close(release)
	if v, err, _ := g.Do(context.Background(), "k", func() (int, error) { return 4, nil }); v != 2 && v != 4 || err != nil {
		t.Fatalf("Do = %d, %v", v, err)
	}
}

func TestPanicReachesEveryCaller(t *testing.T) {
	var g Group[int]
	_, err, _ := g.Do(context.Background(), "k", func() (int, error) { panic("boom") })
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("err = %v", err)
	}
}

// A lone inline run makes no channel, and its Done, asked for after it ended, is
// closed; a caller that joined it meanwhile is woken by the channel its Done made.
func TestJoinInlineDoneLazy(t *testing.T) {
	var g Group[int]
	c, leader := g.JoinInline("k", func() (int, error) { return 1, nil }, nil)
	c.Leave()
	if !leader {
		t.Fatal("not the leader")
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done of an ended run is not closed")
	}
	if v, err := c.Result(); v != 1 || err != nil {
		t.Fatalf("Result = %d, %v", v, err)
	}

	joined := make(chan *Call[int], 1)
	c, _ = g.JoinInline("k", func() (int, error) {
		j, leader := g.Join(context.Background(), "k", nil, nil)
		if leader {
			t.Error("the joiner leads")
		}
		joined <- j
		return 2, nil
	}, nil)
	c.Leave()
	j := <-joined // the joiner's Done was not asked for before the run ended
	<-j.Done()
	if v, _ := j.Result(); v != 2 {
		t.Fatalf("joiner's Result = %d", v)
	}
}

// goid returns the id of the calling goroutine, read from its stack trace.
func goid() string {
	var b [64]byte
	f := strings.Fields(string(b[:runtime.Stack(b[:], false)]))
	return f[1]
}

// A run handed to a goroutine goes to an idle worker when one waits, so runs one
// after another, panicking or not, run on the workers already there (and their
// grown stacks), not each on a new goroutine. Earlier tests may have left idle
// workers, which the runs may use, and a worker counted idle may not have reached its
// receive when the next run is handed over (a new goroutine then): the bound is loose,
// and a new goroutine per run is far past it.
func TestRunsReuseIdleWorkers(t *testing.T) {
	var g Group[string]
	before := int(idles.Load())
	seen := map[string]bool{}
	const runs = 20
	for i := range runs {
		c, leader := g.Join(context.Background(), fmt.Sprint("k", i), func() (string, error) {
			if i%2 == 1 {
				panic(goid())
			}
			return goid(), nil
		}, nil)
		<-c.Done()
		c.Leave()
		id, err := c.Result()
		var pe *PanicError
		if errors.As(err, &pe) {
			id = pe.Value.(string)
		}
		if !leader || id == "" || (i%2 == 1) != (pe != nil) {
			t.Fatalf("run %d: leader %v, result %q, %v", i, leader, id, err)
		}
		seen[id] = true
		for idles.Load() == 0 { // the worker goes idle just after the run has ended
			runtime.Gosched()
		}
	}
	if len(seen) > before+runs/2 {
		t.Fatalf("%d runs in a row ran on %d goroutines; %d workers were idle before", runs, len(seen), before)
	}
}

// A run begun with Begin is joined like any run: callers of Join and Begin wait for
// End and get its result, and after End the next caller leads a new run. A
// forgotten one ends for its callers without removing the run that replaced it.
func TestBeginEnd(t *testing.T) {
	var g Group[int]
	var runs [3]Call[int]
	c, leader := g.Begin("k", &runs[0])
	if !leader || c != &runs[0] {
		t.Fatalf("first Begin: leader %v, own call %v", leader, c == &runs[0])
	}
	j, joined := g.Join(context.Background(), "k", func() (int, error) { t.Error("Join ran a second computation"); return 0, nil }, nil)
	b, again := g.Begin("k", &runs[1])
	if joined || again || j != c || b != c {
		t.Fatalf("Join led %v, Begin led %v, same run %v %v", joined, again, j == c, b == c)
	}
	select {
	case <-j.Done():
		t.Fatal("done before End")
	default:
	}
	c.End(7, nil)
	<-j.Done()
	<-b.Done()
	for _, x := range []*Call[int]{c, j, b} {
		if v, err := x.Result(); v != 7 || err != nil {
			t.Fatalf("result %d, %v", v, err)
		}
		x.Leave()
	}
	n, leader := g.Begin("k", &runs[1])
	if !leader || n != &runs[1] {
		t.Fatal("a Begin after End did not lead a new run")
	}
	g.Forget("k")
	m, leader := g.Begin("k", &runs[2])
	if !leader {
		t.Fatal("a Begin after Forget did not lead")
	}
	n.End(1, errors.New("old"))
	<-n.Done()
	if cur := g.Current("k"); cur != m {
		t.Fatal("the forgotten run's End removed the run that replaced it")
	}
	m.End(2, nil)
	if g.Current("k") != nil {
		t.Fatal("End left its run registered")
	}
}
