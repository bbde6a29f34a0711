package memcachestore

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
)

// cmdCounter is a TCP proxy to target that counts the commands passing through it.
type cmdCounter struct{ n atomic.Int64 }

func countCommands(t *testing.T, target string) (*cmdCounter, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &cmdCounter{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go func() { _, _ = io.Copy(c, s) }()
			go func() {
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						s.Close()
						return
					}
					switch verb, _, _ := strings.Cut(line, " "); verb {
					case "get", "gets", "set", "add", "cas", "delete", "incr", "decr", "touch":
						p.n.Add(1)
					}
					if _, err := s.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return p, l.Addr().String()
}

// With Options.Addr, a cachier miss costs three round trips on the store's own
// connections (the Get, GetAndCreate, SetAndDelete) and a hit one, and neither sends
// a command through the client.
func TestRoundTrips(t *testing.T) {
	srv := testserver.Memcached(t)
	cmds, addr := countCommands(t, srv.Addr)
	c := memcache.New(addr)
	c.Timeout = 5 * time.Second
	t.Cleanup(func() { _ = c.Close() })
	d, err := New(c, &Options{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	ctx := context.Background()
	f, err := cachier.Wrap(func(_ context.Context, s string) (string, error) { return "v" + s, nil },
		cachier.Name("roundtrips"), cachier.WithStore(store.Adapt(d)))
	if err != nil {
		t.Fatal(err)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36) // keys new to the shared server
	if _, err := f.Call(ctx, run+"-warm"); err != nil { // the counters are read, or created, once
		t.Fatal(err)
	}
	count := func(what string, arg string, want int64) {
		t.Helper()
		trips, n := d.meta.trips.Load(), cmds.n.Load()
		if v, err := f.Call(ctx, arg); err != nil || v != "v"+arg {
			t.Fatalf("%s: %q, %v", what, v, err)
		}
		if got := d.meta.trips.Load() - trips; got != want {
			t.Errorf("%s: %d round trips, want %d", what, got, want)
		}
		if got := cmds.n.Load() - n; got != 0 {
			t.Errorf("%s: %d commands through the client, want none", what, got)
		}
	}
	for i := range 3 {
		arg := run + "-" + strconv.Itoa(i)
		count("miss", arg, 3)
		count("hit", arg, 1)
	}
	if st := f.Stats(); st.StoreErrors != 0 {
		t.Errorf("%d store errors", st.StoreErrors)
	}
}

// oldServer is a TCP proxy to target that answers every meta command with ERROR, as
// memcached before 1.6 does, and passes the rest on.
func oldServer(t *testing.T, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go func() { _, _ = io.Copy(c, s) }()
			go func() {
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						s.Close()
						return
					}
					if verb, _, _ := strings.Cut(line, " "); len(verb) == 2 && verb[0] == 'm' {
						_, _ = c.Write([]byte("ERROR\r\n"))
						continue
					}
					if _, err := s.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// With Options.Addr on a server that knows no meta commands, the store goes on
// through the client.
func TestServerWithoutMetaCommands(t *testing.T) {
	addr := oldServer(t, testserver.Memcached(t).Addr)
	c := memcache.New(addr)
	c.Timeout = 5 * time.Second
	t.Cleanup(func() { _ = c.Close() })
	d, err := New(c, &Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	ctx := context.Background()
	f, err := cachier.Wrap(func(_ context.Context, s string) (string, error) { return "v" + s, nil },
		cachier.Name("old-server"), cachier.WithStore(store.Adapt(d)))
	if err != nil {
		t.Fatal(err)
	}
	arg := strconv.FormatInt(time.Now().UnixNano(), 36)
	for range 2 {
		if v, err := f.Call(ctx, arg); err != nil || v != "v"+arg {
			t.Fatalf("Call = %q, %v", v, err)
		}
	}
	if st := f.Stats(); st.StoreErrors != 0 || st.Misses != 1 || st.Hits != 1 {
		t.Errorf("stats %+v; want 1 miss, 1 hit, no store error", st)
	}
	if !d.noMeta.Load() {
		t.Error("the store still sends meta commands")
	}
}
