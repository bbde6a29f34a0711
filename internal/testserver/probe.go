package testserver

// Readiness probes speak each server's own protocol over a raw connection, so this
// package does not link any driver into the test binaries that use it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// dial connects to addr with ctx's deadline applied to the whole exchange.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	return c, nil
}

// redisPing sends PING and wants PONG.
func redisPing(ctx context.Context, addr string) error {
	r, err := redisCmd(ctx, addr, "PING")
	if err != nil {
		return err
	}
	if r != "PONG" {
		return fmt.Errorf("PING answered %q", r)
	}
	return nil
}

// redisCmd sends one command and returns a simple-string or bulk-string reply; an
// error reply is an error.
func redisCmd(ctx context.Context, addr string, args ...string) (string, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// memcachedVersion sends "version" and wants "VERSION x".
func memcachedVersion(ctx context.Context, addr string) error {
	c, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "version\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return fmt.Errorf("version answered %q", line)
	}
	return nil
}

// pgConnect logs in (trust authentication) with the version 3 protocol and waits for
// ReadyForQuery; a server still starting up answers with an error.
func pgConnect(ctx context.Context, addr, user, db string) error {
	c, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var body bytes.Buffer
	_ = binary.Write(&body, binary.BigEndian, int32(196608)) // protocol 3.0
	for _, kv := range []string{"user", user, "database", db} {
		body.WriteString(kv)
		body.WriteByte(0)
	}
	body.WriteByte(0)
	msg := binary.BigEndian.AppendUint32(nil, uint32(body.Len()+4))
	if _, err := c.Write(append(msg, body.Bytes()...)); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > 1<<20 {
			return fmt.Errorf("bad message length %d", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return err
		}
		switch hdr[0] {
		case 'R': // authentication request: 0 is AuthenticationOk
			if n < 4 || binary.BigEndian.Uint32(payload) != 0 {
				return errors.New("server asks for authentication (want trust)")
			}
		case 'E':
			return fmt.Errorf("postgres: %s", pgErrorText(payload))
		case 'Z': // ReadyForQuery
			_, _ = c.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
			return nil
		}
	}
}

// pgErrorText extracts the message field of an ErrorResponse.
func pgErrorText(p []byte) string {
	for len(p) > 1 {
		typ := p[0]
		end := bytes.IndexByte(p[1:], 0)
		if end < 0 {
			break
		}
		if typ == 'M' {
			return string(p[1 : 1+end])
		}
		p = p[2+end:]
	}
	return "error"
}

// mysqlHandshake reads the server's greeting: protocol 10 means it accepts logins
// (mariadbd greets only once its start-up, including the init file, is done).
func mysqlHandshake(ctx context.Context, addr string) error {
	c, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	payload := make([]byte, n)
	if _, err := io.ReadFull(c, payload); err != nil {
		return err
	}
	switch {
	case n > 3 && payload[0] == 0xff:
		return fmt.Errorf("mysql: %s", payload[3:])
	case n == 0 || payload[0] != 10:
		return fmt.Errorf("mysql: unexpected greeting %q", payload)
	}
	return nil
}

// mongoPing sends {ping: 1} on the admin database as an OP_MSG and wants ok: 1.
func mongoPing(ctx context.Context, addr string) error {
	c, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	// BSON document {ping: int32(1), $db: "admin"}.
	var doc bytes.Buffer
	doc.Write([]byte{0, 0, 0, 0})
	doc.WriteByte(0x10)
	doc.WriteString("ping\x00")
	doc.Write(binary.LittleEndian.AppendUint32(nil, 1))
	doc.WriteByte(0x02)
	doc.WriteString("$db\x00")
	doc.Write(binary.LittleEndian.AppendUint32(nil, uint32(len("admin")+1)))
	doc.WriteString("admin\x00")
	doc.WriteByte(0)
	d := doc.Bytes()
	binary.LittleEndian.PutUint32(d, uint32(len(d)))

	const opMsg = 2013
	var msg []byte
	msg = binary.LittleEndian.AppendUint32(msg, uint32(16+4+1+len(d))) // messageLength
	msg = binary.LittleEndian.AppendUint32(msg, 1)                     // requestID
	msg = binary.LittleEndian.AppendUint32(msg, 0)                     // responseTo
	msg = binary.LittleEndian.AppendUint32(msg, opMsg)                 // opCode
	msg = binary.LittleEndian.AppendUint32(msg, 0)                     // flagBits
	msg = append(msg, 0)                                               // section kind 0: body
	msg = append(msg, d...)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	var hdr [16]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	n := int(binary.LittleEndian.Uint32(hdr[:4])) - 16
	if n < 0 || n > 16<<20 {
		return fmt.Errorf("mongo: bad reply length %d", n)
	}
	if op := binary.LittleEndian.Uint32(hdr[12:]); op != opMsg {
		return fmt.Errorf("mongo: reply opcode %d", op)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		return err
	}
	// ok: double 1.0, the only shape a successful ping takes.
	okTrue := append([]byte{0x01, 'o', 'k', 0}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(1))...)
	if !bytes.Contains(body, okTrue) {
		return fmt.Errorf("mongo: ping answered %q", body)
	}
	return nil
}

// probeClient keeps no idle connections (and so no goroutines) after a probe.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// httpOK wants a 200 from a GET.
func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
