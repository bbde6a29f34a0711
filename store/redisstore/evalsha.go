package redisstore

import (
	"context"
	"strconv"
	"sync"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
)

// scriptCall builds one EVALSHA of the miss path's scripts. Every key and argument is
// written into one buffer and handed to go-redis as a *string (see boxStrings), so a
// call costs a few allocations where Script.Run cost one per key and argument besides
// (each name, channel, record and expiry made apart, then each boxed): about 30 for
// a miss's two scripts.
type scriptCall struct {
	buf   []byte
	ends  []int // where each string ends in buf: the keys, then the arguments
	nkeys int   // how many of the strings are keys; set by args

	strs  [12]string // backs argv's *string entries for most calls
	argv  [15]any
	endsA [12]int
}

// scriptCalls pools the calls of the miss path's scripts: a call and its buffer were
// 40% of the bytes a Redis miss allocated (about 1.3 KB each, two per miss).
var scriptCalls = sync.Pool{New: func() any { return new(scriptCall) }}

// maxPooledBuf is the largest buffer a call keeps in the pool; a call that needed
// more (a large entry) leaves it to the collector.
const maxPooledBuf = 16 << 10

// newScriptCall returns a call whose buffer has room for size bytes. Once the reply
// of its run has been read, free gives it back.
func newScriptCall(size int) *scriptCall {
	c := scriptCalls.Get().(*scriptCall)
	if cap(c.buf) < size {
		c.buf = make([]byte, 0, size)
	}
	c.ends = c.endsA[:0]
	c.nkeys = 0
	return c
}

// free returns c to the pool. Nothing may use c after, nor the command its run
// returned other than through the reply already read: the strings handed to go-redis
// point into c's buffer, which the next call overwrites. go-redis is done with them
// when Process returns (the reply is read into strings of its own).
func (c *scriptCall) free() {
	if cap(c.buf) > maxPooledBuf {
		return
	}
	c.buf = c.buf[:0]
	clear(c.strs[:])
	clear(c.argv[:])
	scriptCalls.Put(c)
}

func (c *scriptCall) end() { c.ends = append(c.ends, len(c.buf)) }

// key adds the name of k's record as the next key.
func (c *scriptCall) key(kr keyer, k store.Key) {
	ns, kind := kindOf(k.Namespace)
	c.buf = kr.appendKey(c.buf, ns, k.ID, kind)
	c.end()
}

// args marks the keys added so far as the script's keys; what follows is arguments.
func (c *scriptCall) args() { c.nkeys = len(c.ends) }

// channel adds the pub/sub channel of k's record as the next argument.
func (c *scriptCall) channel(kr keyer, k store.Key) {
	ns, _ := kindOf(k.Namespace)
	c.buf = kr.appendKey(c.buf, ns, k.ID, kindChannel)
	c.end()
}

// str adds s as the next argument.
func (c *scriptCall) str(s string) {
	c.buf = append(c.buf, s...)
	c.end()
}

// bytes adds b as the next argument.
func (c *scriptCall) bytes(b []byte) {
	c.buf = append(c.buf, b...)
	c.end()
}

// record adds e's record and then its PXAT argument (see driver.record) as the next
// two arguments.
func (c *scriptCall) record(e store.Entry) {
	c.buf = appendRecord(c.buf, e)
	c.end()
	if !e.ExpiresAt.IsZero() {
		c.buf = strconv.AppendInt(c.buf, max(e.ExpiresAt.UnixMilli(), 1), 10)
	}
	c.end()
}

// run sends the EVALSHA of sc with the keys and arguments added, loading sc and
// sending it again if the server does not have it (NOSCRIPT), as Script.Run does.
func (c *scriptCall) run(ctx context.Context, client redis.UniversalClient, sc *redis.Script) *redis.Cmd {
	n := len(c.ends)
	strs := c.strs[:0]
	if n+1 > len(c.strs) {
		strs = make([]string, 0, n+1)
	}
	start := 0
	for _, e := range c.ends {
		// c.buf is complete: no append moves it any more.
		strs = append(strs, unsafe.String(unsafe.SliceData(c.buf[start:]), e-start))
		start = e
	}
	strs = append(strs, sc.Hash())
	argv := c.argv[:]
	if 3+n > len(argv) {
		argv = make([]any, 3+n)
	}
	argv = argv[:3+n]
	argv[0], argv[1], argv[2] = "evalsha", &strs[n], c.nkeys
	boxStrings(argv[3:], strs[:n])
	cmd := redis.NewCmd(ctx, argv...)
	_ = client.Process(ctx, cmd)
	// HasErrorPrefix costs an allocation even for no error.
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := sc.Load(ctx, client).Err(); err != nil {
			return cmd
		}
		cmd = redis.NewCmd(ctx, argv...)
		_ = client.Process(ctx, cmd)
	}
	return cmd
}

// nameLen is an upper bound of the length of a record name of k that needs no escape.
func (kr keyer) nameLen(k store.Key) int { return len(kr.prefix) + len(k.Namespace) + len(k.ID) + 6 }
