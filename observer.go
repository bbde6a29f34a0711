package cachier

import (
	"context"
	"time"
)

// An Observer watches calls, for tracing and logging: an OpenTelemetry span per call
// is the intended use (see the contrib/otel module). Its methods run on the caller's
// goroutine, on every call, hits included, so they must be fast; a Func without an
// Observer pays one nil check.
//
// Install one with WithObserver.
type Observer interface {
	// CallStarted is called when Call begins, before the store is read. The context
	// it returns is the one the call goes on with and passes to the function on a
	// miss, so a span started here is the parent of the computation's spans.
	CallStarted(ctx context.Context, c CallInfo) context.Context
	// CallEnded is called once when Call returns, with the context CallStarted
	// returned.
	CallEnded(ctx context.Context, o Outcome)
}

// CallInfo describes a call that starts.
type CallInfo struct {
	Namespace string // the function's namespace: its name and version
	// KeyID is the argument's key within the namespace: a digest of the argument,
	// or what WithKey returned, which may be readable ("user:42"). Observers that
	// export it should hash it.
	KeyID string
	Store string // the store's type, such as "*redisstore.Store"
}

// Result says how a call was answered.
type Result uint8

// Results of a call.
const (
	ResultMiss     Result = iota // no usable entry: computed, or waited for another caller
	ResultHit                    // a fresh entry
	ResultStaleHit               // a stale entry, served while a background refresh runs (NextTime)
	ResultSkipped                // the cache was bypassed (SkipCache, Disable)
)

// String returns "miss", "hit", "stale_hit" or "skipped".
func (r Result) String() string {
	switch r {
	case ResultHit:
		return "hit"
	case ResultStaleHit:
		return "stale_hit"
	case ResultSkipped:
		return "skipped"
	}
	return "miss"
}

// Outcome describes a call that ended.
type Outcome struct {
	Result Result
	// Computed reports whether this call ran the function itself (a miss whose
	// computation another caller ran has Computed false and Waited > 0).
	Computed bool
	// Waited is how long the call waited for another caller's computation.
	Waited time.Duration
	// Err is what Call returned.
	Err error
}
