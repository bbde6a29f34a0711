package cachier

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Breaker backoff: after the store was found unreachable a Func goes straight to its function for
// breakerMin, doubling with each further failure up to breakerMax; then one call tries
// the store again. Without it, a store that hangs costs every call up to three
// StoreTimeouts (read, lease, write) before the function even runs.
const (
	breakerMin = 20 * time.Millisecond
	breakerMax = time.Second
)

// breaker remembers recent store failures of one Func. Its zero value is closed, and a
// closed breaker costs the hit path one atomic load.
//
// It measures its backoff as a duration since it opened, read from the Func's clock:
// with the real clock that is Go's monotonic reading, so a wall clock stepped back by
// an hour cannot keep the breaker open for the hour; and a clock that reads earlier
// than the opening (a fake or a wall clock stepped back) counts as the backoff being
// over, since trying the store once too early costs one store call and staying open
// too long costs every call the cache.
type breaker struct {
	opened   atomic.Pointer[breakerState] // nil while closed
	failures atomic.Uint32
}

type breakerState struct {
	at      time.Time // by the Func's clock, with its monotonic reading if it has one
	backoff time.Duration
}

// open reports whether calls should bypass the store now.
func (b *breaker) open(c Clock) bool {
	st := b.opened.Load()
	if st == nil {
		return false
	}
	elapsed := c.Now().Sub(st.at)
	return elapsed >= 0 && elapsed < st.backoff
}

// failed records a store failure and opens the breaker for the next backoff.
func (b *breaker) failed(c Clock) {
	n := b.failures.Add(1)
	d := min(breakerMin<<min(n-1, 16), breakerMax)
	b.opened.Store(&breakerState{at: c.Now(), backoff: d})
}

// succeeded records a store operation that worked, and closes the breaker.
func (b *breaker) succeeded() {
	if b.opened.Load() != nil {
		b.opened.Store(nil)
		b.failures.Store(0)
	}
}

// opensBreaker reports whether a failed store operation says that the store itself
// cannot be answering, so that the next calls should not wait for it: this is the one
// place that decides.
//
//   - Only reads open the breaker: get, the calculation lease and version counters.
//     A failed write (set, release, renewal, cleanup) is logged and counted, and reads
//     go on: a read-only mount or a full disk still serves what it holds.
//   - Only errors that say the store is unreachable open it (storeUnreachable): a
//     timeout, a refused, reset or dropped connection, a network or DNS error, a
//     closed client.
//     An error that belongs to one key or one value (too large, a directory planted at
//     one entry, a value the server rejects, a permission on one file) is that key's
//     miss, never every key's.
func opensBreaker(op string, err error) bool {
	switch op {
	case "get", "acquire", "versions":
		return storeUnreachable(err)
	}
	return false
}

// closedMessages are the messages of clients that were closed, from packages whose
// sentinel errors cachier does not import (go-redis "redis: client is closed",
// database/sql "sql: database is closed", the mongo driver "client is disconnected").
var closedMessages = []string{"client is closed", "database is closed", "client is disconnected", "store is closed", "use of closed"}

// storeUnreachable reports whether err says that the store cannot be reached, as
// opposed to refusing one key or one value.
func storeUnreachable(err error) bool {
	var (
		ne  net.Error
		op  *net.OpError
		dns *net.DNSError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return true // StoreTimeout passed: the store hangs
	case errors.As(err, &op), errors.As(err, &dns), errors.Is(err, net.ErrClosed):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		// Not any net.Error: a syscall.Errno is one too, and EISDIR is one entry's.
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.ETIMEDOUT):
		return true
	case errors.Is(err, sql.ErrConnDone), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true // a connection dropped mid-answer
	}
	msg := err.Error()
	for _, m := range closedMessages {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}
