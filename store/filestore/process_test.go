package filestore_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
)

// Multi-process tests re-execute the test binary as workers. The worker's role and
// parameters travel in environment variables; TestHelperProcess is the entry point
// and does nothing in a normal run.

const (
	envRole  = "FILESTORE_TEST_WORKER"
	envDir   = "FILESTORE_TEST_DIR"
	envArg   = "FILESTORE_TEST_ARG"
	workerNS = "proc"
)

var workerKey = store.Key{Namespace: workerNS, ID: "shared"}

// worker starts the test binary in a role. Its stdout is returned for reading.
func worker(t *testing.T, role, dir, arg string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), envRole+"="+role, envDir+"="+dir, envArg+"="+arg)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewReader(out)
}

// readLine reads one line from a worker, failing on EOF.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("worker ended without saying anything more: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestHelperProcess(t *testing.T) {
	role := os.Getenv(envRole)
	if role == "" {
		return
	}
	s, err := filestore.New(&filestore.Options{Dir: os.Getenv(envDir)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	arg := os.Getenv(envArg)
	switch role {
	case "contend":
		err = contend(s, arg)
	case "hold":
		err = hold(s, arg)
	case "writer":
		err = writer(s)
	case "set":
		err = s.Set(context.Background(), workerKey, store.Entry{Value: []byte(arg), StoredAt: time.Now()})
	case "evict":
		err = evictWorker(os.Getenv(envDir), arg)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// contend takes the shared lease n times. While holding it, it appends
// "start <token>" and "end <token>" lines to a log; if two processes ever held the
// lease at once, their lines would interleave.
func contend(d *filestore.Store, arg string) error {
	s := store.Adapt(d)
	ctx := context.Background()
	logPath, nStr, _ := strings.Cut(arg, "|")
	n, _ := strconv.Atoi(nStr)
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	host, _ := os.Hostname()
	// A bug that loses wake-ups must fail the test, not hang it.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := range n {
		o := store.Owner{Host: host, PID: os.Getpid(), Token: fmt.Sprintf("%d-%d", os.Getpid(), i)}
		var l store.Lease
		for {
			ch, stop, err := s.(store.Notifier).Watch(ctx, workerKey)
			if err != nil {
				return err
			}
			l, err = s.Acquire(ctx, workerKey, o, time.Minute)
			if err == nil {
				stop()
				break
			}
			if !errors.Is(err, store.ErrLeaseHeld) {
				stop()
				return err
			}
			select {
			case <-ch:
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				stop()
				return fmt.Errorf("lease %d never became free: %w", i, ctx.Err())
			}
			stop()
		}
		if _, err := fmt.Fprintf(log, "start %s\n", o.Token); err != nil {
			return err
		}
		// Some work under the lease, including an entry write another holder would race.
		if err := s.Set(ctx, workerKey, store.Entry{Value: []byte(o.Token), StoredAt: time.Now()}); err != nil {
			return err
		}
		if e, err := s.Get(ctx, workerKey); err != nil || string(e.Value) != o.Token {
			return fmt.Errorf("under the lease, read %q, %v; wrote %q", e.Value, err, o.Token)
		}
		if _, err := fmt.Fprintf(log, "end %s\n", o.Token); err != nil {
			return err
		}
		if err := s.Release(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// hold takes the shared lease for the given TTL, says so with its expiry, and blocks
// until it is killed.
func hold(drv *filestore.Store, ttl string) error {
	s := store.Adapt(drv)
	d, err := time.ParseDuration(ttl)
	if err != nil {
		return err
	}
	l, err := s.Acquire(context.Background(), workerKey, store.Owner{Host: "worker", PID: os.Getpid(), Token: "doomed"}, d)
	if err != nil {
		return err
	}
	fmt.Printf("acquired %d\n", l.ExpiresAt.UnixNano())
	select {}
}

// bigValue returns a self-checking value: a sequence number, then bytes derived from
// it, then their SHA-256. Any mix of two values or any cut fails checkBigValue.
func bigValue(seq uint64) []byte {
	body := make([]byte, 8+256<<10)
	binary.BigEndian.PutUint64(body, seq)
	for i := 8; i < len(body); i++ {
		body[i] = byte(uint64(i)*31 + seq)
	}
	sum := sha256.Sum256(body)
	return append(body, sum[:]...)
}

func checkBigValue(v []byte) error {
	if len(v) < 8+sha256.Size {
		return fmt.Errorf("value of %d bytes is too short", len(v))
	}
	body, sum := v[:len(v)-sha256.Size], v[len(v)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return fmt.Errorf("value of %d bytes fails its checksum", len(v))
	}
	if want := bigValue(binary.BigEndian.Uint64(body)); !bytes.Equal(v, want) {
		return errors.New("value does not match its sequence number")
	}
	return nil
}

// writer writes big values to the shared key in a loop until it is killed.
func writer(s *filestore.Store) error {
	for seq := uint64(0); ; seq++ {
		if err := s.Set(context.Background(), workerKey, store.Entry{Value: bigValue(seq), StoredAt: time.Now()}); err != nil {
			return err
		}
		if seq == 0 {
			fmt.Println("ready")
		}
	}
}

// TestProcessesContend runs several processes that each take the same lease many
// times and checks from their log that no two ever held it at once.
func TestProcessesContend(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "log")
	const workers, rounds = 4, 25
	cmds := make([]*exec.Cmd, workers)
	for i := range cmds {
		cmds[i], _ = worker(t, "contend", dir, logPath+"|"+strconv.Itoa(rounds))
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2*workers*rounds {
		t.Fatalf("log has %d lines, want %d", len(lines), 2*workers*rounds)
	}
	seen := map[string]bool{}
	for i := 0; i < len(lines); i += 2 {
		tok, ok1 := strings.CutPrefix(lines[i], "start ")
		end, ok2 := strings.CutPrefix(lines[i+1], "end ")
		if !ok1 || !ok2 || tok != end {
			t.Fatalf("two holders at once: lines %d-%d are %q, %q", i+1, i+2, lines[i], lines[i+1])
		}
		if seen[tok] {
			t.Fatalf("token %s held twice", tok)
		}
		seen[tok] = true
	}
}

// TestProcessKilledHoldingLease kills a process that holds a lease and checks that
// another process takes it over once, and only once, it has expired. The survivor's
// leases expire by a fake clock (store.WithClock), set just before the dead holder's
// expiry and then to it: no waiting, and no dependence on how fast this machine is.
func TestProcessKilledHoldingLease(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cmd, out := worker(t, "hold", dir, "1h") // the worker's real clock never gets there
	fields := strings.Fields(readLine(t, out))
	if len(fields) != 2 || fields[0] != "acquired" {
		t.Fatalf("worker said %q", fields)
	}
	ns, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	expiry := time.Unix(0, ns)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	clk := clock.NewFake(expiry.Add(-time.Nanosecond))
	st := store.Adapt(newStore(t, &filestore.Options{Dir: dir}), store.WithClock(clk))
	me := store.Owner{Host: "parent", PID: os.Getpid(), Token: "survivor"}
	heldBy := func(what string, err error, o store.Owner) {
		t.Helper()
		var held *store.HeldError
		if !errors.As(err, &held) || held.Holder.Owner != o {
			t.Fatalf("%s: Acquire = %v; want HeldError naming %+v", what, err, o)
		}
	}
	// The dead worker's lease still holds until its expiry, to the nanosecond.
	_, err = st.Acquire(ctx, workerKey, me, time.Minute)
	heldBy("1ns before the dead holder's expiry", err,
		store.Owner{Host: "worker", PID: cmd.Process.Pid, Token: "doomed"})

	clk.Set(expiry)
	l, err := st.Acquire(ctx, workerKey, me, time.Minute)
	if err != nil {
		t.Fatalf("at the dead holder's expiry: Acquire = %v; want the lease", err)
	}
	if l.Owner != me || !l.TakenOver {
		t.Fatalf("at the dead holder's expiry: Acquire = %+v; want %+v's lease, taken over", l, me)
	}
	// Taken over once: the next contender finds the survivor's lease.
	_, err = st.Acquire(ctx, workerKey, store.Owner{Host: "parent", PID: os.Getpid(), Token: "late"}, time.Minute)
	heldBy("after the takeover", err, me)
}

// TestProcessKilledWriting kills processes in the middle of a loop of large Sets while
// this process reads the key: every read must be a complete value or a miss.
func TestProcessKilledWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, &filestore.Options{Dir: dir})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, hits int
	var readErr error
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			e, err := s.Get(ctx, workerKey)
			reads++
			switch {
			case err == nil:
				hits++
				if err := checkBigValue(e.Value); err != nil {
					readErr = err
					return
				}
			case !errors.Is(err, store.ErrNotFound) || errors.Is(err, filestore.ErrCorrupt):
				readErr = err
				return
			}
		}
	})
	for i := range 4 {
		cmd, out := worker(t, "writer", dir, "")
		if line := readLine(t, out); line != "ready" {
			t.Fatalf("writer said %q", line)
		}
		// Let it write a little more, so that the kill lands at a different point of
		// a write each time; the exact point does not matter.
		time.Sleep(time.Duration(i*7) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		e, err := s.Get(ctx, workerKey)
		if err != nil {
			t.Fatalf("after killing writer %d: Get = %v", i, err)
		}
		if err := checkBigValue(e.Value); err != nil {
			t.Fatalf("after killing writer %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatalf("a concurrent read saw a bad entry: %v", readErr)
	}
	t.Logf("%d concurrent reads, %d hits", reads, hits)
	// Leftover temporary files are invisible to listings.
	n := 0
	for info, err := range s.Entries(ctx, workerNS) {
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != workerKey {
			t.Fatalf("Entries listed %v", info.Key)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("Entries listed %d entries, want 1", n)
	}
}

// TestProcessWakesWatcher checks that a Set by another process wakes a waiter here,
// with notifications and with the polling fallback.
func TestProcessWakesWatcher(t *testing.T) {
	for _, poll := range []bool{false} { // without notifications, cachier polls: no Watch
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			dir := t.TempDir()
			s := newStore(t, &filestore.Options{Dir: dir})
			ch, stop, err := s.Watch(context.Background(), workerKey)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			cmd, _ := worker(t, "set", dir, "from afar")
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			waitWake(t, ch, "a Set in another process")
			if e, err := s.Get(context.Background(), workerKey); err != nil || string(e.Value) != "from afar" {
				t.Fatalf("Get = %q, %v", e.Value, err)
			}
		})
	}
}
