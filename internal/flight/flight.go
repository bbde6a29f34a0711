// Package flight runs one computation per key at a time within a process and lets
// every caller for that key share its result.
//
// Unlike x/sync/singleflight's Do, the computation runs on its own goroutine: a caller
// that gives up on its context leaves, and the shared computation runs on for the
// others (groupcache would cancel it for everyone). A caller that cannot give up (its
// context cannot end) runs it on its own goroutine instead ([Group.JoinInline]),
// which the others cannot tell apart. A panic in the computation is
// caught and handed to every caller as a *PanicError; the caller that started the
// flight re-panics with it, the others get it as an error and never hang.
//
// [Group.Join] hands the caller the run itself, so that it can stop waiting on its
// own terms (a timeout) and report when it leaves ([Call.Leave]); a run whose every
// caller has left can be told so (the abandoned callback). [Group.ForgetAll] detaches
// the runs in flight: they finish for the callers they have, and new callers start
// new runs.
package flight

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// PanicError carries a panic out of a computation.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string {
	return fmt.Sprintf("computation panicked: %v", p.Value)
}

// Call is one run of a computation, shared by the callers that joined it.
type Call[V any] struct {
	val V
	err error

	mu        sync.Mutex
	done      chan struct{} // made by the first Done before the run ends: a lone inline run makes none
	ended     bool
	waiters   int    // callers that joined and have not left
	abandoned func() // called once when the last caller leaves before the run ends
}

// Done is closed when the run has ended.
func (c *Call[V]) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.ended {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

// closedChan is Done's answer for a run that ended before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Result returns the run's result; call it after Done is closed.
func (c *Call[V]) Result() (V, error) { return c.val, c.err }

// Leave records that one caller stopped waiting. When the last one leaves before the
// run has ended, the run's abandoned callback (if any) is called.
func (c *Call[V]) Leave() {
	c.mu.Lock()
	c.waiters--
	var f func()
	if c.waiters == 0 && !c.ended {
		f, c.abandoned = c.abandoned, nil
	}
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

// Group deduplicates computations by key. The zero Group is ready to use.
type Group[V any] struct {
	mu    sync.Mutex
	calls map[string]*Call[V]
}

// Join runs fn for key unless a run for key is already in flight, and returns the
// run; leader reports whether this caller started it. The caller must call Leave once
// it stops waiting, whether or not the run has ended. abandoned, if not nil, is
// called when every caller has left a run this caller started before it ended.
func (g *Group[V]) Join(key string, fn func() (V, error), abandoned func()) (c *Call[V], leader bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*Call[V]{}
	}
	c, ok := g.calls[key]
	if !ok {
		c = &Call[V]{abandoned: abandoned}
		g.calls[key] = c
		go g.run(key, c, fn)
	}
	c.mu.Lock()
	c.waiters++
	c.mu.Unlock()
	g.mu.Unlock()
	return c, !ok
}

// JoinInline is Join for a caller that would wait for the run to end anyway (its
// context cannot end, and nothing else makes it stop waiting): when it leads, fn runs
// on the caller's own goroutine, and JoinInline returns once the run has ended. The
// run behaves as under Join for everyone else: callers that join it meanwhile wait
// for it and may leave, a panic in fn is caught and handed to every caller as a
// *PanicError, and Forget detaches it. It saves the goroutine and its start-up, the
// larger part of a short computation's cost.
func (g *Group[V]) JoinInline(key string, fn func() (V, error), abandoned func()) (c *Call[V], leader bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*Call[V]{}
	}
	c, ok := g.calls[key]
	if ok {
		c.mu.Lock()
		c.waiters++
		c.mu.Unlock()
		g.mu.Unlock()
		return c, false
	}
	c = &Call[V]{abandoned: abandoned, waiters: 1}
	g.calls[key] = c
	g.mu.Unlock()
	g.run(key, c, fn)
	return c, true
}

// Replace starts a new run of fn for key, which later callers of Join join, even if a
// run for key is in flight: that one finishes for the callers that joined it, and no
// one else. The caller leads the new run and must call Leave as with Join. It serves a
// caller that needs a run which began after it asked (a refresh). fn receives the run
// it replaced (nil if none), to wait for it if it must.
func (g *Group[V]) Replace(key string, fn func(prev *Call[V]) (V, error), abandoned func()) *Call[V] {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*Call[V]{}
	}
	prev := g.calls[key]
	c := &Call[V]{abandoned: abandoned, waiters: 1}
	g.calls[key] = c
	go g.run(key, c, func() (V, error) { return fn(prev) })
	g.mu.Unlock()
	return c
}

// Current returns the run for key in flight, or nil.
func (g *Group[V]) Current(key string) *Call[V] {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[key]
}

// Forget detaches the run for key, if one is in flight: it finishes for the callers
// that joined it, and the next caller of key starts a new run.
func (g *Group[V]) Forget(key string) {
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
}

// Do runs fn for key unless a run for key is already in flight, and waits for the
// result or for ctx. leader reports whether this caller started the run.
func (g *Group[V]) Do(ctx context.Context, key string, fn func() (V, error)) (v V, err error, leader bool) {
	c, leader := g.Join(key, fn, nil)
	defer c.Leave()
	select {
	case <-c.Done():
		return c.val, c.err, leader
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err(), leader
	}
}

// Start runs fn for key in the background unless a run is already in flight, and
// reports whether it started one.
func (g *Group[V]) Start(key string, fn func() (V, error)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.calls == nil {
		g.calls = map[string]*Call[V]{}
	}
	if _, ok := g.calls[key]; ok {
		return false
	}
	c := &Call[V]{}
	g.calls[key] = c
	go g.run(key, c, fn)
	return true
}

// ForgetAll detaches every run in flight: each finishes for the callers that joined
// it, and the next caller of its key starts a new run.
func (g *Group[V]) ForgetAll() {
	g.mu.Lock()
	clear(g.calls)
	g.mu.Unlock()
}

func (g *Group[V]) run(key string, c *Call[V], fn func() (V, error)) {
	defer func() {
		if r := recover(); r != nil {
			if pe, ok := r.(*PanicError); ok {
				c.err = pe // a panic re-raised by fn keeps the stack where it began
			} else {
				c.err = &PanicError{Value: r, Stack: debug.Stack()}
			}
		}
		g.mu.Lock()
		if g.calls[key] == c { // not forgotten and replaced meanwhile
			delete(g.calls, key)
		}
		g.mu.Unlock()
		c.mu.Lock()
		c.abandoned = nil
		c.ended = true
		if c.done != nil {
			close(c.done)
		}
		c.mu.Unlock()
	}()
	c.val, c.err = fn()
}
