// Package faultproxy is a TCP proxy for tests that puts network faults between a
// client and a server: added latency, connection resets and a black hole.
//
// Point the client at Proxy.Addr instead of the server, then switch faults on and off
// while it runs:
//
//	p, err := faultproxy.New("127.0.0.1:6379")
//	defer p.Close()
//	st, err := store.Open(ctx, "redis://"+p.Addr()+"/0")
//	p.Latency(200 * time.Millisecond) // every chunk, both ways, arrives 200ms late
//	p.Reset()                         // every connection, open or new, is reset (RST)
//	p.Blackhole()                     // nothing gets through, nothing is refused
//	p.Pass()                          // healed
//
// A black hole stalls traffic rather than dropping it: bytes already read are held and
// delivered once the fault is removed, as TCP retransmission would deliver them after a
// network partition heals. A client that gave up meanwhile closes its connection, and
// the proxy closes the other side. This keeps the byte streams intact, so what a test
// observes is the client's handling of a silent peer, not a protocol desynchronised by
// a proxy that lost bytes no real network loses.
//
// It is a small in-repo alternative to toxiproxy, which would add a dozen modules to
// the main module's requirements for three faults.
package faultproxy

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is the fault currently applied.
type Mode int

// Modes.
const (
	// Pass forwards every byte at once.
	Pass Mode = iota
	// Delay forwards every chunk after the latency set by Latency.
	Delay
	// ResetAll resets every open connection, and every new one as soon as it is
	// accepted.
	ResetAll
	// Hole forwards nothing in either direction and accepts new connections without
	// connecting them to the server.
	Hole
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Delay:
		return "latency"
	case ResetAll:
		return "reset"
	case Hole:
		return "blackhole"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// state is the fault in force; changed is closed when it is replaced.
type state struct {
	mode    Mode
	latency time.Duration
	changed chan struct{}
}

// Proxy forwards TCP connections from Addr to a target address, applying a fault.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	st     state
	links  map[*link]struct{}
	closed bool
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	conns  atomic.Int64
	resets atomic.Int64
}

// link is one proxied connection.
type link struct {
	client net.Conn
	once   sync.Once
	done   chan struct{}

	mu     sync.Mutex
	server net.Conn // nil until dialled
}

func (l *link) conns() []net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.server == nil {
		return []net.Conn{l.client}
	}
	return []net.Conn{l.client, l.server}
}

// New starts a proxy on a free loopback port that forwards to target (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		ln:     ln,
		target: target,
		st:     state{changed: make(chan struct{})},
		links:  map[*link]struct{}{},
		done:   make(chan struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port, for the client.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Stats reports how many connections the proxy accepted and how many it reset.
func (p *Proxy) Stats() (conns, resets int64) { return p.conns.Load(), p.resets.Load() }

// Mode returns the fault in force.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.mode
}

// Pass removes any fault.
func (p *Proxy) Pass() { p.set(Pass, 0) }

// Latency delays every chunk of data, in both directions, by d.
func (p *Proxy) Latency(d time.Duration) { p.set(Delay, d) }

// Blackhole stops all traffic without closing or refusing anything.
func (p *Proxy) Blackhole() { p.set(Hole, 0) }

// Reset resets every open connection (the peers see ECONNRESET), and every new one
// until another fault replaces this one.
func (p *Proxy) Reset() {
	p.set(ResetAll, 0)
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		p.reset(l)
	}
}

func (p *Proxy) set(m Mode, latency time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.st.changed)
	p.st = state{mode: m, latency: latency, changed: make(chan struct{})}
}

func (p *Proxy) state() state {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.conns.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// serve connects c to the target once the fault allows it and pumps both ways.
func (p *Proxy) serve(c net.Conn) {
	l := &link{client: c, done: make(chan struct{})}
	if !p.track(l) {
		c.Close()
		return
	}
	defer p.untrack(l)
	if !p.admit(l) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-l.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	var d net.Dialer
	s, err := d.DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		p.reset(l) // the server is down: the client sees a reset, as it would directly
		return
	}
	l.mu.Lock()
	l.server = s
	l.mu.Unlock()
	select {
	case <-l.done: // reset or closed while dialling
		s.Close()
		return
	default:
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(l, s, c) }()
	go func() { defer wg.Done(); p.pump(l, c, s) }()
	wg.Wait()
}

// admit waits until the fault lets a new connection through to the server, and
// reports whether it may go.
func (p *Proxy) admit(l *link) bool {
	for {
		st := p.state()
		switch st.mode {
		case ResetAll:
			p.reset(l)
			return false
		case Hole:
			select {
			case <-st.changed:
			case <-l.done:
				return false
			}
		default:
			return true
		}
	}
}

// pump copies src to dst through the fault until either side fails or the link ends.
func (p *Proxy) pump(l *link, dst, src net.Conn) {
	defer l.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate(l) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// gate waits until the fault lets a chunk through, and reports whether it may go.
func (p *Proxy) gate(l *link) bool {
	for {
		st := p.state()
		switch st.mode {
		case Pass:
			return true
		case Delay:
			t := time.NewTimer(st.latency)
			select {
			case <-t.C:
				return true
			case <-l.done:
				t.Stop()
				return false
			}
		case ResetAll:
			p.reset(l)
			return false
		case Hole:
			select {
			case <-st.changed:
			case <-l.done:
				return false
			}
		}
	}
}

func (p *Proxy) track(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.links[l] = struct{}{}
	return true
}

func (p *Proxy) untrack(l *link) {
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// reset closes both sides of l with SO_LINGER 0, so that each peer gets a RST.
func (p *Proxy) reset(l *link) {
	l.once.Do(func() {
		// Counted before the close: a peer that sees the RST may read Stats at once.
		p.resets.Add(1)
		for _, c := range l.conns() {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
		}
		close(l.done)
	})
}

// close closes both sides of l normally.
func (l *link) close() {
	l.once.Do(func() {
		for _, c := range l.conns() {
			c.Close()
		}
		close(l.done)
	})
}
