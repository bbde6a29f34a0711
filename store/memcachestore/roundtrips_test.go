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

// lineProxy is a TCP proxy to target that reads what the client sends line by line
// (memcached's text protocol: a command is a line, and so is a value's data block)
// and hands each line to handle, which forwards it to the server unless it returns
// false; it may answer the client itself on c. The server's replies pass through
// unchanged. It returns the proxy's address.
func lineProxy(t *testing.T, target string, handle func(line string, c net.Conn) (forward bool)) string {
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
					if !handle(line, c) {
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

// countCommands is a proxy to target that counts the commands passing through it.
func countCommands(t *testing.T, target string) (*atomic.Int64, string) {
	t.Helper()
	var n atomic.Int64
	addr := lineProxy(t, target, func(line string, _ net.Conn) bool {
		switch verb, _, _ := strings.Cut(line, " "); verb {
		case "get", "gets", "set", "add", "cas", "delete", "incr", "decr", "touch":
			n.Add(1)
		}
		return true
	})
	return &n, addr
}

// openStore returns a Store whose client talks to clientAddr and whose own
// connections (Options.Addr) go to metaAddr; both are closed when t ends.
func openStore(t testing.TB, clientAddr, metaAddr string) *Store {
	t.Helper()
	c := memcache.New(clientAddr)
	c.Timeout = 5 * time.Second
	t.Cleanup(func() { _ = c.Close() })
	s, err := New(c, &Options{Addr: metaAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// vFunc wraps a function that returns "v"+its argument, cached on d.
func vFunc(t *testing.T, name string, d *Store) *cachier.Func[string, string] {
	t.Helper()
	f, err := cachier.Wrap(func(_ context.Context, s string) (string, error) { return "v" + s, nil },
		cachier.Name(name), cachier.WithStore(store.Adapt(d)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// With Options.Addr, a cachier miss costs three round trips on the store's own
// connections (the Get, GetAndCreate, SetAndDelete) and a hit one, and neither sends
// a command through the client.
func TestRoundTrips(t *testing.T) {
	srv := testserver.Memcached(t)
	cmds, addr := countCommands(t, srv.Addr)
	d := openStore(t, addr, srv.Addr)
	ctx := context.Background()
	f := vFunc(t, "roundtrips", d)
	run := strconv.FormatInt(time.Now().UnixNano(), 36) // keys new to the shared server
	if _, err := f.Call(ctx, run+"-warm"); err != nil { // the counters are read, or created, once
		t.Fatal(err)
	}
	count := func(what string, arg string, want int64) {
		t.Helper()
		trips, n := d.meta.trips.Load(), cmds.Load()
		if v, err := f.Call(ctx, arg); err != nil || v != "v"+arg {
			t.Fatalf("%s: %q, %v", what, v, err)
		}
		if got := d.meta.trips.Load() - trips; got != want {
			t.Errorf("%s: %d round trips, want %d", what, got, want)
		}
		if got := cmds.Load() - n; got != 0 {
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
	return lineProxy(t, target, func(line string, c net.Conn) bool {
		if verb, _, _ := strings.Cut(line, " "); len(verb) == 2 && verb[0] == 'm' {
			_, _ = c.Write([]byte("ERROR\r\n"))
			return false
		}
		return true
	})
}

// With Options.Addr on a server that knows no meta commands, the store goes on
// through the client.
func TestServerWithoutMetaCommands(t *testing.T) {
	addr := oldServer(t, testserver.Memcached(t).Addr)
	d := openStore(t, addr, addr)
	ctx := context.Background()
	f := vFunc(t, "old-server", d)
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
