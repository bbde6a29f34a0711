package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// echo starts a line echo server and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func newProxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// roundTrip sends a line and reads it back with a deadline.
func roundTrip(c net.Conn, r *bufio.Reader, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return errors.New("garbled: " + line)
	}
	return nil
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// dialRoundTrip connects and does one round trip; the reset may come at connect time.
func dialRoundTrip(p *Proxy) error {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c, bufio.NewReader(c), 10*time.Second)
}

func TestPassAndLatency(t *testing.T) {
	p := newProxy(t)
	c, r := dial(t, p)
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Latency(20 * time.Millisecond)
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Fatalf("with latency: %v", err)
	}
}

func TestReset(t *testing.T) {
	p := newProxy(t)
	c, r := dial(t, p)
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	err := roundTrip(c, r, 10*time.Second)
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("open connection after Reset: %v, want a reset", err)
	}
	if err := dialRoundTrip(p); err == nil { // accepted, then reset
		t.Fatal("a new connection got through a Reset fault")
	}
	p.Pass()
	c3, r3 := dial(t, p)
	if err := roundTrip(c3, r3, 10*time.Second); err != nil {
		t.Fatalf("after Pass: %v", err)
	}
	if _, resets := p.Stats(); resets < 2 {
		t.Fatalf("resets = %d, want at least 2", resets)
	}
}

// A black hole swallows traffic silently; when it heals, the stalled bytes arrive.
func TestBlackholeStallsAndHeals(t *testing.T) {
	p := newProxy(t)
	c, r := dial(t, p)
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	err := roundTrip(c, r, 200*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("through a black hole: %v, want a timeout", err)
	}
	c2, r2 := dial(t, p) // accepted, never connected
	if err := roundTrip(c2, r2, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection through a black hole: %v, want a timeout", err)
	}
	p.Pass()
	// The first line, stalled, arrives now; then the connection works again.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("stalled line after healing = %q, %v", line, err)
	}
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Fatalf("after healing: %v", err)
	}
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	if line, err := r2.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("stalled new connection after healing = %q, %v", line, err)
	}
}

func TestServerDownIsAReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := dialRoundTrip(p); err == nil {
		t.Fatal("a connection to a closed port succeeded")
	}
}
