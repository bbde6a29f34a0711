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
	mu sync.Mutex
	m  map[store.Key]*readCall // the SELECT in flight of each key
}

// readCall is one SELECT of a key, shared by the Gets that joined it before it began.
type readCall struct {
	done chan struct{} // closed when e and err are set
	e    store.Entry
	err  error
	// next is the SELECT that the Gets arriving while this one runs will share; it
	// begins when this one ends.
	next *readCall
	// joined counts the Gets that joined this SELECT before it began, its leader
	// excluded (for tests).
	joined int
}

// get returns the entry of k, read by fetch, shared with concurrent Gets of k.
func (r *reads) get(ctx context.Context, k store.Key, fetch func(context.Context) (store.Entry, error)) (store.Entry, error) {
	for {
		r.mu.Lock()
		if r.m == nil {
			r.m = map[store.Key]*readCall{}
		}
		cur := r.m[k]
		if cur == nil {
			c := &readCall{done: make(chan struct{})}
			r.m[k] = c
			r.mu.Unlock()
			return r.lead(ctx, k, c, fetch)
		}
		next, leads := cur.next, false
		if next == nil {
			next, leads = &readCall{done: make(chan struct{})}, true
			cur.next = next
		} else {
			next.joined++
		}
		r.mu.Unlock()

		if leads {
			// Begin the next SELECT once the one in flight has ended.
			select {
			case <-cur.done:
				return r.follow(ctx, k, next, fetch)
			case <-ctx.Done():
				// The SELECT still runs for the Gets that joined it, under a context
				// of its own; they give up on theirs.
				go func() {
					<-cur.done
					_, _ = r.follow(context.WithoutCancel(ctx), k, next, fetch)
				}()
				return store.Entry{}, ctx.Err()
			}
		}
		select {
		case <-next.done:
		case <-ctx.Done():
			return store.Entry{}, ctx.Err()
		}
		if next.err != nil && ctx.Err() == nil && isContextError(next.err) {
			continue // the leader gave up; this Get has not
		}
		e := next.e
		e.Value = bytes.Clone(e.Value) // each caller owns its copy
		return e, next.err
	}
}

// follow runs c, the SELECT after the one that just ended.
func (r *reads) follow(ctx context.Context, k store.Key, c *readCall, fetch func(context.Context) (store.Entry, error)) (store.Entry, error) {
	r.mu.Lock()
	r.m[k] = c
	r.mu.Unlock()
	return r.lead(ctx, k, c, fetch)
}

// lead runs the SELECT of c and hands its result to the Gets that joined it.
func (r *reads) lead(ctx context.Context, k store.Key, c *readCall, fetch func(context.Context) (store.Entry, error)) (store.Entry, error) {
	c.e, c.err = fetch(ctx)
	r.mu.Lock()
	if r.m[k] == c && c.next == nil {
		delete(r.m, k)
	}
	r.mu.Unlock()
	close(c.done)
	return c.e, c.err
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
