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
// a miss's two scripts. A batch's script (swapManyScript, setAndDeleteManyScript) is
// built the same way, whatever its number of keys.
type scriptCall struct {
	buf   []byte
	ends  []int // where each string ends in buf: the keys, then the arguments
	nkeys int   // how many of the strings are keys; set by args
	strs  []string
	argv  []any
	built bool // strs and argv hold the call (cmd was called)

	// The first backing of ends, strs and argv: enough for the single-key scripts.
	strsA [12]string
	argvA [15]any
	endsA [12]int
}

// scriptCalls pools the calls of the miss path's scripts: a call and its buffer were
// 40% of the bytes a Redis miss allocated (about 1.3 KB each, two per miss).
var scriptCalls = sync.Pool{New: func() any {
	c := new(scriptCall)
	c.ends, c.strs, c.argv = c.endsA[:0], c.strsA[:0], c.argvA[:0]
	return c
}}

// maxPooledBuf is the largest buffer a call keeps in the pool; a call that needed
// more (a large entry, a batch of large ones) leaves it to the collector. A batch of
// 100 entries of 256 bytes fills about 45 KB.
const maxPooledBuf = 128 << 10

// maxPooledStrs is the most strings a pooled call keeps room for: a batch of
// maxBatchScriptKeys writes has 8 strings per write.
const maxPooledStrs = 8*maxBatchScriptKeys + 16

// newScriptCall returns a call whose buffer has room for size bytes. Once the reply
// of its run has been read, free gives it back.
func newScriptCall(size int) *scriptCall {
	c := scriptCalls.Get().(*scriptCall)
	if cap(c.buf) < size {
		c.buf = make([]byte, 0, size)
	}
	c.ends, c.strs, c.argv = c.ends[:0], c.strs[:0], c.argv[:0]
	c.nkeys, c.built = 0, false
	return c
}

// free returns c to the pool. Nothing may use c after, nor the command its run
// returned other than through the reply already read: the strings handed to go-redis
// point into c's buffer, which the next call overwrites. go-redis is done with them
// when Process returns (the reply is read into strings of its own).
func (c *scriptCall) free() {
	if cap(c.buf) > maxPooledBuf || cap(c.strs) > maxPooledStrs {
		return
	}
	c.buf = c.buf[:0]
	clear(c.strs[:cap(c.strs)])
	clear(c.argv[:cap(c.argv)])
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

// int adds n, in decimal, as the next argument.
func (c *scriptCall) int(n int) {
	c.buf = strconv.AppendInt(c.buf, int64(n), 10)
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

// swap adds the five arguments of swapFn for k: compare with old (or check for no
// record when old is nil), then write next (or delete when nil).
func (c *scriptCall) swap(kr keyer, k store.Key, old []byte, next *store.Entry) {
	c.str(flag(old != nil))
	c.bytes(old)
	if next != nil {
		c.record(*next)
	} else {
		c.end() // no record: delete
		c.end() // and no PXAT
	}
	c.channel(kr, k)
}

// cmd returns the EVALSHA of sc with the keys and arguments added, to send: every
// string must have been added. Each call returns a new command over the same
// arguments (a command refused with NOSCRIPT is sent again as a new one).
func (c *scriptCall) cmd(ctx context.Context, sc *redis.Script) *redis.Cmd {
	n := len(c.ends)
	if !c.built {
		c.built = true
		strs := c.strs[:0]
		start := 0
		for _, e := range c.ends {
			// c.buf is complete: no append moves it any more.
			strs = append(strs, unsafe.String(unsafe.SliceData(c.buf[start:]), e-start))
			start = e
		}
		c.strs = append(strs, sc.Hash())
		argv := c.argv[:0]
		if cap(argv) < 3+n {
			argv = make([]any, 0, 3+n)
		}
		argv = argv[:3+n]
		argv[0], argv[1], argv[2] = "evalsha", &c.strs[n], c.nkeys
		boxStrings(argv[3:], c.strs[:n])
		c.argv = argv
	}
	return redis.NewCmd(ctx, c.argv...)
}

// run sends the EVALSHA of sc with the keys and arguments added, loading sc and
// sending it again if the server does not have it (NOSCRIPT), as Script.Run does.
func (c *scriptCall) run(ctx context.Context, client redis.UniversalClient, sc *redis.Script) *redis.Cmd {
	cmd := c.cmd(ctx, sc)
	_ = client.Process(ctx, cmd)
	// HasErrorPrefix costs an allocation even for no error.
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := sc.Load(ctx, client).Err(); err != nil {
			return cmd
		}
		cmd = c.cmd(ctx, sc)
		_ = client.Process(ctx, cmd)
	}
	return cmd
}

// nameLen is an upper bound of the length of a record name of k that needs no escape.
func (kr keyer) nameLen(k store.Key) int { return len(kr.prefix) + len(k.Namespace) + len(k.ID) + 6 }
