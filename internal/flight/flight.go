// Package flight runs one computation per key at a time within a process and lets
// every caller for that key share its result.
//
// Unlike x/sync/singleflight's Do, the computation runs on a goroutine of its own (a
// pooled worker's, see spawn): a caller that gives up on its context leaves, and the
// shared computation runs on for the others (groupcache would cancel it for everyone). A caller that cannot give up (its
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
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
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

	// What the run does, and where it is registered: set before it starts.
	task   Task[V]
	g      *Group[V]
	key    string
	labels context.Context // whose pprof labels the run has on a worker (see work)
}

// Task is a run's work together with its Call: a type that embeds Call[V] and has a
// Run method, so that one allocation holds the run and what it computes (JoinTask,
// JoinInlineTask).
type Task[V any] interface {
	Run() (V, error)
	call() *Call[V]
}

func (c *Call[V]) call() *Call[V] { return c }

// funcTask is the Task of a plain function.
type funcTask[V any] struct {
	Call[V]
	fn func() (V, error)
}

func (t *funcTask[V]) Run() (V, error) { return t.fn() }

func taskOf[V any](fn func() (V, error)) Task[V] { return &funcTask[V]{fn: fn} }

// work runs the call on a worker's goroutine (see spawn), under the goroutine labels
// (runtime/pprof) of the context of the caller that started it, and clears them
// after: a pooled worker runs the computations of many callers, and a new one inherits
// the labels of whichever goroutine started it.
func (c *Call[V]) work() {
	pprof.SetGoroutineLabels(c.labels)
	c.labels = nil // the run ends its use: it keeps no context alive
	c.g.run(c.key, c)
	pprof.SetGoroutineLabels(context.Background())
}

// labelsOf is ctx as the labels of a run, context.Background() when nil.
func labelsOf(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
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
// called when every caller has left a run this caller started before it ended. A run
// this caller starts has the pprof labels of ctx (nil: none) on its goroutine; ctx is
// used for nothing else.
func (g *Group[V]) Join(ctx context.Context, key string, fn func() (V, error), abandoned func()) (c *Call[V], leader bool) {
	return g.JoinTask(ctx, key, taskOf(fn), abandoned)
}

// JoinTask is Join with the run's work and Call in one Task, which is used only if
// this caller leads.
func (g *Group[V]) JoinTask(ctx context.Context, key string, t Task[V], abandoned func()) (c *Call[V], leader bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*Call[V]{}
	}
	c, ok := g.calls[key]
	if !ok {
		c = t.call()
		c.task, c.g, c.key, c.abandoned, c.labels = t, g, key, abandoned, labelsOf(ctx)
		g.calls[key] = c
		spawn(c)
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
// larger part of a short computation's cost. fn runs under the caller's own goroutine
// labels (runtime/pprof), which JoinInline leaves alone: they cannot be read back to
// be restored, and pprof.Do keeps them equal to its context's.
func (g *Group[V]) JoinInline(key string, fn func() (V, error), abandoned func()) (c *Call[V], leader bool) {
	return g.JoinInlineTask(key, taskOf(fn), abandoned)
}

// JoinInlineTask is JoinInline with the run's work and Call in one Task, which is
// used only if this caller leads.
func (g *Group[V]) JoinInlineTask(key string, t Task[V], abandoned func()) (c *Call[V], leader bool) {
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
	c = t.call()
	c.task, c.g, c.key, c.abandoned, c.waiters = t, g, key, abandoned, 1
	g.calls[key] = c
	g.mu.Unlock()
	g.run(key, c)
	return c, true
}

// Begin registers a run for key that the caller performs itself, wherever and
// however it likes, and ends with End, unless a run for key is already in flight:
// then it joins that one. c is a zero Call the caller provides (a batch allocates
// the Calls of all its keys at once); it becomes the run only if the caller leads.
// Either way the caller must Leave, as with Join. Callers that join the run meanwhile
// wait for End as for any run, and Forget and ForgetAll detach it. It lets one caller
// lead the runs of many keys (a batch computing them in one call) without a goroutine
// per key: with Join, each run would be a goroutine that waits for the batch.
func (g *Group[V]) Begin(key string, c *Call[V]) (run *Call[V], leader bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*Call[V]{}
	}
	if cur, ok := g.calls[key]; ok {
		cur.mu.Lock()
		cur.waiters++
		cur.mu.Unlock()
		g.mu.Unlock()
		return cur, false
	}
	c.g, c.key, c.waiters = g, key, 1
	g.calls[key] = c
	g.mu.Unlock()
	return c, true
}

// End ends a run begun with Begin, with its result: the callers waiting for it get
// v and err, and the next caller of its key starts a new run. Call it once.
func (c *Call[V]) End(v V, err error) {
	c.val, c.err = v, err
	c.g.ended(c.key, c)
}

// Replace starts a new run of fn for key, which later callers of Join join, even if a
// run for key is in flight: that one finishes for the callers that joined it, and no
// one else. The caller leads the new run and must call Leave as with Join. It serves a
// caller that needs a run which began after it asked (a refresh). fn receives the run
// it replaced (nil if none), to wait for it if it must. The run has the pprof labels
// of ctx, as under Join.
func (g *Group[V]) Replace(ctx context.Context, key string, fn func(prev *Call[V]) (V, error), abandoned func()) *Call[V] {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*Call[V]{}
	}
	prev := g.calls[key]
	t := taskOf(func() (V, error) { return fn(prev) })
	c := t.call()
	c.task, c.g, c.key, c.abandoned, c.waiters, c.labels = t, g, key, abandoned, 1, labelsOf(ctx)
	g.calls[key] = c
	spawn(c)
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
	c, leader := g.Join(ctx, key, fn, nil)
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
// reports whether it started one. The run has the pprof labels of ctx, as under Join.
func (g *Group[V]) Start(ctx context.Context, key string, fn func() (V, error)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.calls == nil {
		g.calls = map[string]*Call[V]{}
	}
	if _, ok := g.calls[key]; ok {
		return false
	}
	t := taskOf(fn)
	c := t.call()
	c.task, c.g, c.key, c.labels = t, g, key, labelsOf(ctx)
	g.calls[key] = c
	spawn(c)
	return true
}

// ForgetAll detaches every run in flight: each finishes for the callers that joined
// it, and the next caller of its key starts a new run.
func (g *Group[V]) ForgetAll() {
	g.mu.Lock()
	clear(g.calls)
	g.mu.Unlock()
}

func (g *Group[V]) run(key string, c *Call[V]) {
	defer func() {
		if r := recover(); r != nil {
			if pe, ok := r.(*PanicError); ok {
				c.err = pe // a panic re-raised by fn keeps the stack where it began
			} else {
				c.err = &PanicError{Value: r, Stack: debug.Stack()}
			}
		}
		g.ended(key, c)
	}()
	c.val, c.err = c.task.Run()
}

// ended unregisters the run c of key, unless it was forgotten, and wakes its callers.
func (g *Group[V]) ended(key string, c *Call[V]) {
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
}

// Runs handed to goroutines go to idle workers when there are: a worker keeps the
// stack it grew, so a run costs a hand-over rather than a goroutine's start and the
// growth of its stack (a cancellable caller's memory miss was about twice an inline
// one). A worker idle for workerIdle ends; at most maxIdle wait at a time.
const (
	workerIdle = 10 * time.Second
	maxIdle    = 64
)

// job is a run to hand over: a *Call's.
type job interface{ work() }

var (
	jobs  = make(chan job) // unbuffered: a send succeeds only into a waiting worker
	idles atomic.Int32
)

// spawn runs j on an idle worker if one is waiting, else on a new goroutine that
// becomes a worker once j has run.
func spawn(j job) {
	select {
	case jobs <- j:
	default:
		go worker(j)
	}
}

// worker runs j, then the jobs handed to it while it waits, until it has waited
// workerIdle for one. Each run sets and clears its own goroutine labels (work).
func worker(j job) {
	var t *time.Timer
	for {
		j.work()
		j = nil // an idle worker keeps no run (and its result) alive
		if idles.Add(1) > maxIdle {
			idles.Add(-1)
			return
		}
		if t == nil {
			t = time.NewTimer(workerIdle)
		} else {
			t.Reset(workerIdle)
		}
		select {
		case j = <-jobs:
			idles.Add(-1)
		case <-t.C:
			idles.Add(-1)
			return
		}
	}
}
