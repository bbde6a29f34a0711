package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/redis/rueidis"
)

// The coherence section: how a change made in one process reaches another process's
// local copy, on Redis (issue 13). cachier's local tier is measured by
// proctest.LocalTierAcrossProcesses, the harness behind proctest.ReportCoherence;
// rueidis's client-side caching (DoCache, invalidated by Redis's CLIENT TRACKING) by
// rueidisCoherence, which does the same: a reader process spins on its cached read,
// and from just before the change the parent makes, it notes its first read that its
// local copy did not answer (the miss) and its first read that returned the new value.

var flagCoherence = flag.Int("bench.coherence", 200, "changes per implementation in the coherence section")

// Environment of the rueidis reader process.
const (
	envRueidisReader = "CACHIER_BENCH_RUEIDIS_READER" // redis URL
	envRueidisKey    = "CACHIER_BENCH_RUEIDIS_KEY"    // the key it reads
)

// rueidisProbeEvery paces the reader's reads while it waits for a change, as
// proctest's tier reader paces cachier's calls (its probeEvery, 100 µs): a reader
// reading without a pause keeps one of a 2-core machine's cores busy, and the writer
// and redis-server wait for it. Both readers must be paced alike for the figures to
// compare.
const rueidisProbeEvery = 100 * time.Microsecond

// rueidisNil is how the reader reports a key that does not exist (after a DEL).
const rueidisNil = "<nil>"

// runCoherence measures both implementations on a redis-server of their own. On the
// server the other sections share, cachier's Clear (one change in six) took up to
// 1.6 s: it SCANs the whole database for the namespace's keys (see redisstore's doc),
// and the batch section leaves its keys behind (207,000 after one round of it). The
// changes' p99 measured that SCAN, not coherence (4.6 ms on a server of its own).
func runCoherence(t *testing.T, rep *Report) {
	url := testserver.Dedicated(t, testserver.KindRedis).URL
	rounds := *flagCoherence
	cachierRes := CoherenceResult{Impl: "cachier LocalTier over Redis (redisstore, pub/sub)", Changes: "Precache, Invalidate, Refresh, InvalidateTags, Clear, InvalidatePrefix"}
	t.Run("cachier", func(t *testing.T) {
		cachierRes.add(proctest.LocalTierAcrossProcesses(t, url, rounds, nil))
	})
	rueidisRes := CoherenceResult{Impl: "github.com/redis/rueidis (DoCache, CLIENT TRACKING)", Changes: "SET, DEL"}
	t.Run("rueidis", func(t *testing.T) {
		rueidisRes.add(rueidisCoherence(t, url, rounds))
	})
	for _, r := range []*CoherenceResult{&cachierRes, &rueidisRes} {
		if len(r.Miss) == 0 {
			r.Err = "failed: see the test log"
		}
		rep.Coherence = append(rep.Coherence, *r)
	}
}

func (r *CoherenceResult) add(cs []proctest.Coherence) {
	for _, c := range cs {
		r.Miss = append(r.Miss, c.Miss)
		r.New = append(r.New, c.New)
		r.Stale = append(r.Stale, max(c.Miss-c.Change, 0))
		r.Change = append(r.Change, c.Change)
	}
}

// rueidisCoherence makes rounds changes to one key through a rueidis client, a SET of
// a new value and a DEL in turn, while a reader process (rueidisReader) spins on
// DoCache of that key, and returns the timings of each change, as
// proctest.LocalTierAcrossProcesses does for cachier.
func rueidisCoherence(t testing.TB, url string, rounds int) []proctest.Coherence {
	t.Helper()
	ctx := context.Background()
	key := "bench-coherence:" + randHex(4)
	c := rueidisClient(t, url)
	set := func(v string) error { return c.Do(ctx, c.B().Set().Key(key).Value(v).Build()).Error() }
	current := "v0"
	if err := set(current); err != nil {
		t.Fatal(err)
	}
	r := startLineWorker(t, envRueidisReader+"="+url, envRueidisKey+"="+key)
	var lat []proctest.Coherence
	for i := 1; i <= rounds; i++ {
		r.send(t, "warm "+current)
		if l := r.line(t); l != "warm" {
			t.Fatalf("round %d: reader said %q, want warm", i, l)
		}
		want, change := "v"+strconv.Itoa(i), func() error { return set("v" + strconv.Itoa(i)) }
		if i%2 == 0 {
			want, change = rueidisNil, func() error { return c.Do(ctx, c.B().Del().Key(key).Build()).Error() }
		}
		r.send(t, "await "+current)
		start := time.Now()
		if err := change(); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		done := time.Since(start)
		fields := strings.Fields(r.line(t))
		if len(fields) != 4 || fields[0] != "saw" {
			t.Fatalf("round %d: reader said %q", i, fields)
		}
		if fields[1] != want {
			t.Fatalf("round %d: the reader got %q, want %q", i, fields[1], want)
		}
		miss, _ := strconv.ParseInt(fields[2], 10, 64)
		seen, _ := strconv.ParseInt(fields[3], 10, 64)
		lat = append(lat, proctest.Coherence{Change: done, Miss: time.Unix(0, miss).Sub(start), New: time.Unix(0, seen).Sub(start)})
		current = want
	}
	return lat
}

// rueidisReader is the reader process of rueidisCoherence. It answers commands on
// stdin, like proctest's tier reader:
//
//	warm WANT   read until a client-side cache hit returns WANT; print "warm"
//	await OLD   read, every rueidisProbeEvery, until a read returns something else;
//	            print "saw VALUE MISS NEW",
//	            the unix nanos when the first read missed the client-side cache and
//	            when the new value was returned
func rueidisReader(ctx context.Context, url, key string, in io.Reader, out io.Writer) error {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return err
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return err
	}
	defer c.Close()
	get := func() (string, bool, error) {
		res := c.DoCache(ctx, c.B().Get().Key(key).Cache(), time.Hour)
		v, err := res.ToString()
		if rueidis.IsRedisNil(err) {
			return rueidisNil, res.IsCacheHit(), nil
		}
		return v, res.IsCacheHit(), err
	}
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		switch verb {
		case "warm":
			for {
				v, hit, err := get()
				if err != nil {
					return err
				}
				if v == arg && hit {
					break
				}
			}
			fmt.Fprintln(out, "warm")
		case "await":
			var miss int64
			for {
				at := time.Now()
				v, hit, err := get()
				if err != nil {
					return err
				}
				if miss == 0 && !hit {
					miss = at.UnixNano()
				}
				if v != arg {
					fmt.Fprintln(out, "saw", v, miss, time.Now().UnixNano())
					break
				}
				time.Sleep(rueidisProbeEvery)
			}
		default:
			return fmt.Errorf("unknown command %q", verb)
		}
	}
	return sc.Err()
}

// rueidisReaderMain runs this process as the reader when the environment says so.
func rueidisReaderMain() int {
	err := rueidisReader(context.Background(), os.Getenv(envRueidisReader), os.Getenv(envRueidisKey), os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rueidis reader:", err)
		return 3
	}
	return 0
}

// lineWorker is this test binary re-executed as a worker that reads commands on stdin
// and answers one line each.
type lineWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startLineWorker(t testing.TB, env ...string) *lineWorker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	w := &lineWorker{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if l := w.line(t); l != "ready" {
		t.Fatalf("worker said %q, want ready", l)
	}
	return w
}

// line returns the worker's next line, or fails the test after a generous guard
// against a hung worker (not a timing assertion).
func (w *lineWorker) line(t testing.TB) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if w.out.Scan() {
			got <- w.out.Text()
		}
		close(got)
	}()
	select {
	case l, ok := <-got:
		if !ok {
			t.Fatalf("worker exited: %v", errors.Join(w.out.Err(), w.cmd.Wait()))
		}
		return l
	case <-time.After(2 * time.Minute):
		t.Fatal("worker did not answer within 2 minutes")
	}
	return ""
}

func (w *lineWorker) send(t testing.TB, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintln(w.stdin, cmd); err != nil {
		t.Fatal(err)
	}
}

// TestRueidisCoherence runs the rueidis side of the coherence section for a few
// changes (two SETs, two DELs): the reader must see each new value or the deletion.
func TestRueidisCoherence(t *testing.T) {
	if lat := rueidisCoherence(t, redisURL(t), 4); len(lat) != 4 {
		t.Fatalf("%d timings, want 4", len(lat))
	}
}
