package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"sync"

	"github.com/cachier-go/cachier/store"
)

// reads coalesces concurrent Gets of one key. A stampede starts with every caller of
// a cold key looking it up at once (64 goroutines of a process, say), and each of
// those lookups would take a pooled connection (or open one: a forked backend on
// PostgreSQL) and a round trip, one after the other. Instead, while one SELECT of a
// key is in flight, the Gets of that key that arrive wait for it to end and then share
// the next SELECT: a read never answers a Get with a row read before that Get began,
// so a Get that follows a committed Set (a waiter woken by its notification) still
// sees it.
type reads struct {
	coalescer[store.Key, store.Entry]
}

// get returns the entry of k, read by fetch, shared with concurrent Gets of k.
func (r *reads) get(ctx context.Context, k store.Key, fetch func(context.Context) (store.Entry, error)) (store.Entry, error) {
	return r.do(ctx, k, fetch, func(e store.Entry) store.Entry {
		e.Value = bytes.Clone(e.Value) // each caller owns its copy
		return e
	})
}

// coalescer shares one call of fetch among the concurrent callers of one key, as reads
// describes: while one call is in flight, the callers that arrive wait for it to end
// and then share the next, which begins after all of them arrived.
type coalescer[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*sharedCall[V] // the call in flight of each key
}

// sharedCall is one call of a key, shared by the callers that joined it before it
// began.
type sharedCall[V any] struct {
	done chan struct{} // closed when v and err are set
	v    V
	err  error
	// next is the call that the callers arriving while this one runs will share; it
	// begins when this one ends.
	next *sharedCall[V]
	// joined counts the callers that joined this call before it began, its leader
	// excluded (for tests).
	joined int
}

// do returns what fetch returns for k, shared with concurrent callers of k. The
// leader of a call gets its result as is, each joiner share(result).
func (r *coalescer[K, V]) do(ctx context.Context, k K, fetch func(context.Context) (V, error), share func(V) V) (V, error) {
	var zero V
	for {
		r.mu.Lock()
		if r.m == nil {
			r.m = map[K]*sharedCall[V]{}
		}
		cur := r.m[k]
		if cur == nil {
			c := &sharedCall[V]{done: make(chan struct{})}
			r.m[k] = c
			r.mu.Unlock()
			return r.lead(ctx, k, c, fetch)
		}
		next, leads := cur.next, false
		if next == nil {
			next, leads = &sharedCall[V]{done: make(chan struct{})}, true
			cur.next = next
		} else {
			next.joined++
		}
		r.mu.Unlock()

		if leads {
			// Begin the next call once the one in flight has ended.
			select {
			case <-cur.done:
				return r.follow(ctx, k, next, fetch)
			case <-ctx.Done():
				// The call still runs for the callers that joined it, under a context
				// of its own; they give up on theirs.
				go func() {
					<-cur.done
					_, _ = r.follow(context.WithoutCancel(ctx), k, next, fetch)
				}()
				return zero, ctx.Err()
			}
		}
		select {
		case <-next.done:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		if next.err != nil && ctx.Err() == nil && isContextError(next.err) {
			continue // the leader gave up; this caller has not
		}
		if next.err != nil {
			return zero, next.err
		}
		return share(next.v), nil
	}
}

// follow runs c, the call after the one that just ended.
func (r *coalescer[K, V]) follow(ctx context.Context, k K, c *sharedCall[V], fetch func(context.Context) (V, error)) (V, error) {
	r.mu.Lock()
	r.m[k] = c
	r.mu.Unlock()
	return r.lead(ctx, k, c, fetch)
}

// lead runs the call c and hands its result to the callers that joined it.
func (r *coalescer[K, V]) lead(ctx context.Context, k K, c *sharedCall[V], fetch func(context.Context) (V, error)) (V, error) {
	c.v, c.err = fetch(ctx)
	r.mu.Lock()
	if r.m[k] == c && c.next == nil {
		delete(r.m, k)
	}
	r.mu.Unlock()
	close(c.done)
	return c.v, c.err
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
