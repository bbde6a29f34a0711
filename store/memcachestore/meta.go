package memcachestore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// A batch is a list of item operations that Get, GetAndCreate and SetAndDelete run
// as one step. With Options.Addr the Store sends the whole batch in one write on a
// connection of its own, in memcached's meta protocol (mg, ms, md; memcached 1.6+),
// and reads the answers in order: one round trip. Without it, the batch runs through
// gomemcache, one round trip per run of reads (a GetMulti) and per write.
type op struct {
	verb byte   // 'g' get (with CAS), 'a' add, 's' set, 'd' delete if CAS
	key  string // item key
	val  []byte // for 'a' and 's'
	exp  int32  // for 'a' and 's'
	cas  uint64 // for 'd'

	// Results.
	found bool   // 'g': the item exists
	value []byte // 'g': its value
	gotCA uint64 // 'g': its CAS
	ok    bool   // 'a', 's', 'd': stored or deleted
	err   error  // 'a', 's': a server error for this item alone (too large)
}

// run executes ops in order, in one round trip when the Store has its own
// connections.
func (s *Store) run(ctx context.Context, ops []op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.meta != nil && !s.noMeta.Load() {
		err := s.meta.run(ctx, ops)
		if !errors.Is(err, errNoMeta) {
			return err
		}
		// A server older than 1.6 knows no meta commands, and so ran none of the
		// batch: from now on, the client.
		s.noMeta.Store(true)
	}
	return s.runClient(ops)
}

// errNoMeta is the server's answer to the first command of a batch: "ERROR", an
// unknown command.
var errNoMeta = errors.New("memcachestore: the server does not know memcached's meta commands (memcached 1.6+)")

// runClient is run over gomemcache.
func (s *Store) runClient(ops []op) error {
	for i := 0; i < len(ops); {
		o := &ops[i]
		switch o.verb {
		case 'g':
			j := i
			for j < len(ops) && ops[j].verb == 'g' {
				j++
			}
			var items map[string]*memcache.Item
			if j == i+1 { // a plain get: GetMulti costs a goroutine per server
				it, err := s.c.Get(o.key)
				switch {
				case err == nil:
					items = map[string]*memcache.Item{o.key: it}
				case !errors.Is(err, memcache.ErrCacheMiss):
					return err
				}
			} else {
				keys := make([]string, 0, j-i)
				for _, g := range ops[i:j] {
					keys = append(keys, g.key)
				}
				var err error
				if items, err = s.c.GetMulti(keys); err != nil {
					return err
				}
			}
			for x := i; x < j; x++ {
				if it := items[ops[x].key]; it != nil {
					ops[x].found, ops[x].value, ops[x].gotCA = true, it.Value, it.CasID
					if ops[x].value == nil {
						ops[x].value = []byte{}
					}
				}
			}
			i = j
			continue
		case 'a', 's':
			it := &memcache.Item{Key: o.key, Value: o.val, Expiration: o.exp}
			var err error
			if o.verb == 'a' {
				err = s.c.Add(it)
			} else {
				err = s.c.Set(it)
			}
			switch {
			case err == nil:
				o.ok = true
			case errors.Is(err, memcache.ErrNotStored):
			case isTooLarge(err):
				o.err = err
			default:
				return err
			}
		case 'd':
			err := s.c.CompareAndSwap(&memcache.Item{Key: o.key, Value: []byte{}, Expiration: -1, CasID: o.cas})
			switch {
			case err == nil:
				o.ok = true
			case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCASConflict), errors.Is(err, memcache.ErrCacheMiss):
			default:
				return err
			}
		}
		i++
	}
	return nil
}

// metaPool is the Store's own connections to its one server, for batches.
type metaPool struct {
	addr    string
	dial    func(ctx context.Context, network, address string) (net.Conn, error)
	timeout time.Duration
	maxIdle int

	mu     sync.Mutex
	free   []*metaConn
	closed bool

	trips atomic.Int64 // batches sent, for tests
}

type metaConn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

// newMetaPool makes the pool for addr with the client's dialer, timeout and idle
// limit (at least 8 idle connections: gomemcache's default of 2 makes every third
// concurrent caller dial).
func newMetaPool(addr string, c *memcache.Client) *metaPool {
	p := &metaPool{addr: addr, dial: c.DialContext, timeout: c.Timeout, maxIdle: max(c.MaxIdleConns, 8)}
	if p.timeout <= 0 {
		p.timeout = memcache.DefaultTimeout
	}
	if p.dial == nil {
		var d net.Dialer
		p.dial = d.DialContext
	}
	return p
}

func (p *metaPool) get(ctx context.Context) (*metaConn, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, errors.New("memcachestore: closed")
	}
	dctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	nc, err := p.dial(dctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &metaConn{nc: nc, r: bufio.NewReaderSize(nc, 4096), w: bufio.NewWriterSize(nc, 4096)}, nil
}

func (p *metaPool) put(c *metaConn) {
	p.mu.Lock()
	if !p.closed && len(p.free) < p.maxIdle {
		p.free = append(p.free, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	c.nc.Close()
}

func (p *metaPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.free {
		c.nc.Close()
	}
	p.free = nil
}

// run sends ops in one write and reads their answers. A connection that fails
// mid-batch is closed, never reused.
func (p *metaPool) run(ctx context.Context, ops []op) error {
	p.trips.Add(1)
	c, err := p.get(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		c.nc.Close()
		return err
	}
	if err := c.exchange(ops); err != nil {
		c.nc.Close()
		return err
	}
	p.put(c)
	return nil
}

func (c *metaConn) exchange(ops []op) error {
	w := c.w
	for i := range ops {
		o := &ops[i]
		switch o.verb {
		case 'g':
			w.WriteString("mg ")
			w.WriteString(o.key)
			w.WriteString(" v c\r\n")
		case 'a', 's':
			w.WriteString("ms ")
			w.WriteString(o.key)
			w.WriteByte(' ')
			w.WriteString(strconv.Itoa(len(o.val)))
			if o.exp != 0 {
				w.WriteString(" T")
				w.WriteString(strconv.FormatInt(int64(o.exp), 10))
			}
			if o.verb == 'a' {
				w.WriteString(" ME")
			}
			w.WriteString("\r\n")
			w.Write(o.val)
			w.WriteString("\r\n")
		case 'd':
			w.WriteString("md ")
			w.WriteString(o.key)
			w.WriteString(" C")
			w.WriteString(strconv.FormatUint(o.cas, 10))
			w.WriteString("\r\n")
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for i := range ops {
		if err := c.read(&ops[i]); err != nil {
			if i > 0 && errors.Is(err, errNoMeta) {
				return fmt.Errorf("memcachestore: ERROR from the server to %c %s", ops[i].verb, ops[i].key)
			}
			return err
		}
	}
	return nil
}

// read reads the answer to o.
func (c *metaConn) read(o *op) error {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	code, rest, _ := bytes.Cut(line, []byte(" "))
	switch string(code) {
	case "VA":
		if o.verb != 'g' {
			break
		}
		sz, flags, _ := bytes.Cut(rest, []byte(" "))
		n, err := strconv.Atoi(string(sz))
		if err != nil || n < 0 {
			return fmt.Errorf("memcachestore: bad meta answer %q", line)
		}
		for f := range bytes.FieldsSeq(flags) {
			if f[0] == 'c' {
				o.gotCA, _ = strconv.ParseUint(string(f[1:]), 10, 64)
			}
		}
		v := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, v); err != nil {
			return err
		}
		if v[n] != '\r' || v[n+1] != '\n' {
			return fmt.Errorf("memcachestore: meta value of %d bytes not followed by CRLF", n)
		}
		o.found, o.value = true, v[:n:n]
		return nil
	case "EN":
		if o.verb == 'g' {
			return nil
		}
	case "HD":
		if o.verb != 'g' {
			o.ok = true
			return nil
		}
	case "NS", "EX", "NF":
		if o.verb != 'g' {
			return nil
		}
	case "ERROR":
		return errNoMeta
	case "SERVER_ERROR":
		if (o.verb == 'a' || o.verb == 's') && isTooLarge(errors.New(string(line))) {
			o.err = fmt.Errorf("memcachestore: %s", line)
			return nil
		}
		return fmt.Errorf("memcachestore: %s", line)
	}
	return fmt.Errorf("memcachestore: unexpected meta answer %q to %c %s", line, o.verb, o.key)
}
