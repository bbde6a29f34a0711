package redisstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
)

// lockedBuffer is a bytes.Buffer for a slog handler used from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOpenChecksServer: Open fails on a server that does not answer, naming the host
// without the password and saying what to check, and on a database the server does
// not have; lazy=1 keeps the lazy connect (issue 12 item 7).
func TestOpenChecksServer(t *testing.T) {
	ctx := context.Background()
	var logs lockedBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })

	_, err := store.Open(ctx, "redis://:pw1234@127.0.0.1:1/15")
	if !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("Open of a closed port = %v, want ErrUnreachable", err)
	}
	for _, want := range []string{"127.0.0.1:1", "check that the server runs", "lazy=1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "pw1234") {
		t.Errorf("error leaks the password: %v", err)
	}
	if !strings.Contains(logs.String(), "go-redis") {
		t.Errorf("go-redis's own log lines did not reach slog: %q", logs.String())
	}

	s, err := store.Open(ctx, "redis://:pw1234@127.0.0.1:1/15?lazy=1")
	if err != nil {
		t.Fatalf("lazy Open: %v", err)
	}
	_ = s.Close()
	if _, err := store.Open(ctx, "redis://127.0.0.1:1/15?lazy=maybe"); !errors.Is(err, store.ErrBadURL) || !strings.Contains(err.Error(), "lazy") {
		t.Errorf("lazy=maybe: %v, want a bad URL error naming lazy", err)
	}

	srv := testserver.Redis(t)
	u := strings.TrimSuffix(srv.URL, "/0")
	s, err = store.Open(ctx, u+"/1")
	if err != nil {
		t.Fatalf("Open of a live server: %v", err)
	}
	_ = s.Close()
	_, err = store.Open(ctx, u+"/99")
	if !errors.Is(err, store.ErrUnreachable) || !strings.Contains(err.Error(), "databases setting") {
		t.Errorf("Open of database 99 = %v, want an error about the databases setting", err)
	}
}

// TestBadIntParams: every integer parameter out of range is an error naming it and
// the range, never a panic (issue 10 finding 7).
func TestBadIntParams(t *testing.T) {
	for name, r := range intParams {
		for _, v := range []string{"-2", "x", "99999999999"} {
			raw := "redis://h/0?" + name + "=" + v
			if strings.HasPrefix(name, "max_redirects") || name == "dialer_retries" || name == "failing_timeout_seconds" {
				raw = "redis+cluster://h?" + name + "=" + v
			}
			_, err := store.Open(context.Background(), raw)
			if !errors.Is(err, store.ErrBadURL) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "from") {
				t.Errorf("%s: %v; want a bad URL error naming %s and its range %d..%d", raw, err, name, r.min, r.max)
			}
		}
	}
	_, err := store.Open(context.Background(), "redis://h/-1")
	if !errors.Is(err, store.ErrBadURL) {
		t.Errorf("redis://h/-1: %v, want a bad URL error", err)
	}
}
