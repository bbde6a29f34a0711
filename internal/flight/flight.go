// Package flight runs one computation per key at a time within a process and lets
// every caller for that key share its result.
//
// Unlike x/sync/singleflight's Do, the computation runs on its own goroutine: a caller
// that gives up on its context leaves, and the shared computation runs on for the
// others (groupcache would cancel it for everyone). A panic in the computation is
// caught and handed to every caller as a *PanicError; the caller that started the
// flight re-panics with it, the others get it as an error and never hang.
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

type call[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// Group deduplicates computations by key. The zero Group is ready to use.
type Group[V any] struct {
	mu    sync.Mutex
	calls map[string]*call[V]
}

// Do runs fn for key unless a run for key is already in flight, and waits for the
// result or for ctx. leader reports whether this caller started the run.
func (g *Group[V]) Do(ctx context.Context, key string, fn func() (V, error)) (v V, err error, leader bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*call[V]{}
	}
	c, ok := g.calls[key]
	if !ok {
		c = &call[V]{done: make(chan struct{})}
		g.calls[key] = c
		go g.run(key, c, fn)
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.err, !ok
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err(), !ok
	}
}

// Start runs fn for key in the background unless a run is already in flight, and
// reports whether it started one.
func (g *Group[V]) Start(key string, fn func() (V, error)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.calls == nil {
		g.calls = map[string]*call[V]{}
	}
	if _, ok := g.calls[key]; ok {
		return false
	}
	c := &call[V]{done: make(chan struct{})}
	g.calls[key] = c
	go g.run(key, c, fn)
	return true
}

func (g *Group[V]) run(key string, c *call[V], fn func() (V, error)) {
	defer func() {
		if r := recover(); r != nil {
			c.err = &PanicError{Value: r, Stack: debug.Stack()}
		}
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()
	c.val, c.err = fn()
}
