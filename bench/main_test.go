package bench

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
)

var (
	flagAll     = flag.Bool("bench.all", false, "run TestBenchAll: every section, then the markdown table")
	flagRounds  = flag.Int("bench.rounds", 5, "rounds per subject; the table shows medians")
	flagOut     = flag.String("bench.out", "RESULTS.md", "file that receives the markdown table (besides stdout)")
	flagMillion = flag.Bool("bench.million", false, "also measure the filestore hit at 1M entries (populating takes minutes on 2 cores)")
	flagOnly    = flag.String("bench.only", "", "comma-separated sections to run (memory,file,redis,sql,mongodb,memcached,s3,tags,batch-memory,batch-redis,local-tier,stampede,coherence); empty: all")
)

func TestMain(m *testing.M) {
	if os.Getenv(envWorker) != "" {
		os.Exit(stampedeWorker())
	}
	if os.Getenv(envRueidisReader) != "" {
		os.Exit(rueidisReaderMain())
	}
	proctest.MaybeWorker() // cachier's reader of the coherence section
	testserver.Main(m)
}

// subject is one thing measured: an implementation of an operation.
type subject struct {
	op, impl string
	base     bool // cachier's subject, the one the others are compared with
	note     string
	run      func(b *testing.B)
}

// section builds the subjects of one table section. Its setup uses t (servers,
// temporary directories, cleanup); a missing server skips the section.
type section struct {
	name  string
	build func(t *testing.T) []subject
}

var sections = []section{
	{"memory", memorySubjects},
	{"file", fileSubjects},
	{"redis", redisSubjects},
	{"sql", sqlSubjects},
	{"mongodb", mongoSubjects},
	{"memcached", memcachedSubjects},
	{"s3", s3Subjects},
	{"tags", tagsSubjects},
	{"batch-memory", batchMemorySubjects},
	{"batch-redis", batchRedisSubjects},
	{"local-tier", localTierSubjects},
}

// failures records why a subject's benchmark failed: testing.Benchmark only returns
// an empty result.
var failures sync.Map // impl+op -> string

// must fails the benchmark with err, recording the message for the table.
func must(b *testing.B, what string, err error) {
	if err == nil {
		return
	}
	failures.Store(b.Name(), fmt.Sprintf("%s: %v", what, err))
	b.Fatalf("%s: %v", what, err)
}

func selected(name string) bool {
	if *flagOnly == "" {
		return true
	}
	for _, s := range strings.Split(*flagOnly, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

// TestBenchAll runs every section the machine has servers for, in interleaved rounds
// (every subject of a section once per round), and writes the table.
func TestBenchAll(t *testing.T) {
	if !*flagAll {
		t.Skip("run with -bench.all (bench/run does)")
	}
	rep := &Report{Machine: machine()}
	for _, sec := range sections {
		if !selected(sec.name) {
			continue
		}
		t.Run(sec.name, func(t *testing.T) {
			subs := sec.build(t)
			ms := make([]*Measurement, len(subs))
			for i, s := range subs {
				ms[i] = &Measurement{Section: sec.name, Op: s.op, Impl: s.impl, Base: s.base, Note: s.note}
				rep.Results = append(rep.Results, ms[i])
			}
			for round := range *flagRounds {
				// Rotate the order each round, so that no subject is always the
				// first (cold) or the last of its section.
				for j := range subs {
					i := (j + round) % len(subs)
					s := subs[i]
					if ms[i].Err != "" {
						continue
					}
					var name string
					res := testing.Benchmark(func(b *testing.B) {
						name = b.Name()
						s.run(b)
					})
					if res.N == 0 {
						msg, ok := failures.Load(name)
						if !ok {
							msg = "failed or skipped"
						}
						ms[i].Err = fmt.Sprint(msg)
						t.Logf("%s / %s / %s: %s", sec.name, s.op, s.impl, ms[i].Err)
						continue
					}
					ns := float64(res.T.Nanoseconds()) / float64(res.N)
					ms[i].NsPerOp = append(ms[i].NsPerOp, ns)
					ms[i].AllocsOp = res.AllocsPerOp()
					t.Logf("round %d: %s / %s / %s: %s, %d allocs (N=%d)", round+1, sec.name, s.op, s.impl, FormatNs(ns), res.AllocsPerOp(), res.N)
				}
			}
		})
	}
	if selected("stampede") {
		t.Run("stampede", func(t *testing.T) { runStampedes(t, rep) })
	}
	if selected("coherence") {
		t.Run("coherence", func(t *testing.T) { runCoherence(t, rep) })
	}
	rep.Notes = append(rep.Notes, notes...)
	rep.Machine.LoadEnd = loadAverage()

	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	fmt.Print("\n" + buf.String())
	if *flagOut != "" {
		if err := os.WriteFile(*flagOut, buf.Bytes(), 0o644); err != nil {
			t.Fatalf("write the table: %v", err)
		}
		t.Logf("table written to %s", *flagOut)
	}
}

// machine describes this machine and run.
func machine() Machine {
	m := Machine{
		Date:   time.Now(),
		CPUs:   runtime.NumCPU(),
		CPU:    "unknown CPU",
		Go:     runtime.Version(),
		OSArch: runtime.GOOS + "/" + runtime.GOARCH,
		Rounds: *flagRounds,
		Bench:  "1s",
	}
	m.LoadStart = loadAverage()
	if f := flag.Lookup("test.benchtime"); f != nil {
		m.Bench = f.Value.String()
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// loadAverage returns the 1-minute load average, or "" where /proc/loadavg is missing.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return ""
}

// notes are printed under the tables; sections add to them while they are built.
var notes = []string{
	"A miss is the whole memoized call on a new key: look up, compute (a function returning at once), store. cachier's miss also takes and releases the calculation lease (an atomic store operation each), which is what makes one computation per key across processes possible; peers without cross-process single flight skip them.",
	"Parallel rows use b.RunParallel on every core (GOMAXPROCS = nproc): the figure is wall time per operation, so 1e9 / it is the throughput.",
}

func addNote(n string) {
	for _, x := range notes {
		if x == n {
			return
		}
	}
	notes = append(notes, n)
}
