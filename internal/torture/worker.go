// Package torture runs cachier under abuse and checks afterwards that nothing went
// wrong: worker processes call, precache, invalidate and clear one store while the
// driver SIGKILLs them at random moments (and the store's server, and the network to
// it), and corrupted bytes are planted in every engine.
//
// The tests are in this package's test files; a short run is part of the ordinary
// test suite, and a long one is
//
//	go test -run TestTorture ./internal/torture/ -torture.duration=10m -torture.workers=8
//
// # How a wrong value would be caught
//
// Every value a worker computes is a Value: the key, a token naming this computation
// (worker and sequence number), and HMAC-SHA256(token, key). Before computing, the
// worker appends "C <token> <key>" to its own log file (or "F ..." for a computation
// that will fail on purpose, "P ..." for a value it precaches), with one write(2), so
// a line is on disk before the value can reach any store. Afterwards the checker
// reads every key through cachier and accepts an entry only if its MAC verifies and
// its token was logged, for that key, as a computation that succeeded: a value from
// another key, a torn or mixed write, a failed computation that got cached, or bytes
// nobody computed would all be caught.
package torture

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	_ "github.com/cachier-go/cachier/store/all" // every URL scheme
)

// Environment of a worker process.
const (
	envRole         = "CACHIER_TORTURE_ROLE"
	envURL          = "CACHIER_TORTURE_URL"
	envDir          = "CACHIER_TORTURE_DIR"
	envName         = "CACHIER_TORTURE_NAME"
	envID           = "CACHIER_TORTURE_ID"
	envKeys         = "CACHIER_TORTURE_KEYS"
	envLeaseTTL     = "CACHIER_TORTURE_LEASE_TTL"
	envStoreTimeout = "CACHIER_TORTURE_STORE_TIMEOUT"
	envGoroutines   = "CACHIER_TORTURE_GOROUTINES"
	envLocalTier    = "CACHIER_TORTURE_LOCAL_TIER"
)

// Files in the shared directory.
const (
	stopFile  = "stop"  // exists: workers finish their operation, report and exit
	phaseFile = "phase" // holds a number the driver bumps when the server came back
)

// Value is what every torture function returns.
type Value struct {
	Key   int
	Token string
	MAC   string
}

// NewValue returns the value of key computed as token.
func NewValue(key int, token string) Value {
	return Value{Key: key, Token: token, MAC: mac(key, token)}
}

func mac(key int, token string) string {
	h := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(h, "key:%d", key)
	return hex.EncodeToString(h.Sum(nil))
}

// Check reports whether v is intact and belongs to key.
func (v Value) Check(key int) error {
	if v.Key != key {
		return fmt.Errorf("value for key %d returned for key %d", v.Key, key)
	}
	if !hmac.Equal([]byte(v.MAC), []byte(mac(key, v.Token))) {
		return fmt.Errorf("value for key %d has a bad MAC (token %q)", key, v.Token)
	}
	return nil
}

// errInjected is the error a torture function fails with on purpose.
var errInjected = errors.New("torture: injected failure")

// MaybeWorker runs the worker named in the environment and exits, or returns at once
// in an ordinary test run. TestMain calls it first.
func MaybeWorker() {
	if os.Getenv(envRole) == "" {
		return
	}
	if err := runWorker(); err != nil {
		fmt.Fprintln(os.Stderr, "torture worker:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// worker is one worker process.
type worker struct {
	id   string
	dir  string
	keys int
	log  *os.File

	mu   sync.Mutex
	seq  int
	seen map[string]bool // tokens of other workers received from Calls

	counts map[string]int // operations done, by name
}

// logLine appends one line to the worker's log with a single write.
func (w *worker) logLine(kind string, key int) (string, error) {
	w.mu.Lock()
	w.seq++
	token := w.id + "." + strconv.Itoa(w.seq)
	w.mu.Unlock()
	if _, err := w.log.WriteString(fmt.Sprintf("%s %s %d\n", kind, token, key)); err != nil {
		return "", fmt.Errorf("log: %w", err)
	}
	return token, nil
}

func (w *worker) count(op string) {
	w.mu.Lock()
	w.counts[op]++
	w.mu.Unlock()
}

func runWorker() error {
	ctx := context.Background()
	w := &worker{
		id:     os.Getenv(envID),
		dir:    os.Getenv(envDir),
		seen:   map[string]bool{},
		counts: map[string]int{},
	}
	var err error
	if w.keys, err = strconv.Atoi(os.Getenv(envKeys)); err != nil {
		return err
	}
	ttl, err := time.ParseDuration(os.Getenv(envLeaseTTL))
	if err != nil {
		return err
	}
	timeout, err := time.ParseDuration(os.Getenv(envStoreTimeout))
	if err != nil {
		return err
	}
	goroutines, err := strconv.Atoi(os.Getenv(envGoroutines))
	if err != nil {
		return err
	}
	if w.log, err = os.OpenFile(filepath.Join(w.dir, "log."+w.id), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
		return err
	}
	defer w.log.Close()
	// lazy=1: a worker started while the server is down (the harness kills it)
	// must run and fail open, not fail at Open's connection check.
	st, err := store.Open(ctx, withLazy(os.Getenv(envURL)))
	if err != nil {
		return err
	}
	defer st.Close()

	fn := func(_ context.Context, key int) (Value, error) {
		fail := rand.IntN(20) == 0
		kind := "C"
		if fail {
			kind = "F"
		}
		token, err := w.logLine(kind, key)
		if err != nil {
			return Value{}, err
		}
		// Long enough for kills to land mid-computation, sometimes past a lease renewal.
		if rand.IntN(10) == 0 {
			time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
		}
		if fail {
			return Value{}, errInjected
		}
		return NewValue(key, token), nil
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil)) // Stats counts what matters
	opts := []cachier.Option{cachier.Name(os.Getenv(envName)), cachier.WithStore(st),
		cachier.LeaseTTL(ttl), cachier.StoreTimeout(timeout), cachier.WithLogger(quiet)}
	if os.Getenv(envLocalTier) == "true" {
		opts = append(opts, cachier.LocalTier(w.keys, 0))
	}
	f, err := cachier.Wrap(fn, opts...)
	if err != nil {
		return err
	}

	var (
		phaseMu   sync.Mutex
		phase     = readPhase(w.dir)
		phaseHits = f.Stats().Hits
		hitPhase  int // the last phase this worker reported a hit in
	)
	fmt.Println("ready")
	var (
		wg   sync.WaitGroup
		errs = make([]error, goroutines)
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if i%8 == 0 {
					if _, err := os.Stat(filepath.Join(w.dir, stopFile)); err == nil {
						return
					}
					if p := readPhase(w.dir); p != 0 {
						phaseMu.Lock()
						if p != phase {
							phase, phaseHits = p, f.Stats().Hits
						}
						phaseMu.Unlock()
					}
				}
				if err := w.op(ctx, f); err != nil {
					errs[g] = err
					return
				}
				if i%8 == 0 {
					phaseMu.Lock()
					if phase != 0 && f.Stats().Hits > phaseHits && phase != hitPhase {
						// Tell the driver this survivor was served from the store in
						// this phase, so it stops on that rather than on a timer.
						hitPhase = phase
						_ = os.WriteFile(filepath.Join(w.dir, fmt.Sprintf("phasehit.%d.%s", phase, w.id)), nil, 0o600)
					}
					phaseMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s := f.Stats()
	phaseMu.Lock()
	fmt.Printf("stats computations=%d hits=%d misses=%d store_errors=%d decode_errors=%d takeovers=%d phase=%d phase_hits=%d\n",
		s.Computations, s.Hits, s.Misses, s.StoreErrors, s.DecodeErrors, s.LeaseTakeovers, phase, s.Hits-phaseHits)
	phaseMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	ops := make([]string, 0, len(w.counts))
	for op, n := range w.counts {
		ops = append(ops, fmt.Sprintf("%s=%d", op, n))
	}
	sort.Strings(ops)
	fmt.Println("ops", strings.Join(ops, " "))
	for tok := range w.seen {
		fmt.Println("seen", tok)
	}
	return nil
}

func readPhase(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, phaseFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// op does one random operation. Only a wrong value, or a Call that fails with
// anything but the injected error, is an error: the store failing is not.
func (w *worker) op(ctx context.Context, f *cachier.Func[int, Value]) error {
	key := rand.IntN(w.keys)
	call := func(name string, opts ...cachier.Option) error {
		v, err := f.Call(ctx, key, opts...)
		w.count(name)
		switch {
		case errors.Is(err, errInjected):
			return nil
		case err != nil:
			return fmt.Errorf("%s(%d): %w", name, key, err)
		}
		if err := v.Check(key); err != nil {
			return fmt.Errorf("%s(%d): %w", name, key, err)
		}
		if !strings.HasPrefix(v.Token, w.id+".") {
			w.mu.Lock()
			w.seen[v.Token] = true
			w.mu.Unlock()
		}
		return nil
	}
	switch n := rand.IntN(100); {
	case n < 70:
		return call("call")
	case n < 75:
		return call("refresh", cachier.Overwrite())
	case n < 78:
		return call("maxage", cachier.MaxAge(time.Duration(rand.IntN(50))*time.Millisecond))
	case n < 86:
		token, err := w.logLine("P", key)
		if err != nil {
			return err
		}
		w.count("precache")
		if err := f.Precache(ctx, key, NewValue(key, token)); err != nil {
			w.count("precache_error")
		}
	case n < 96:
		w.count("invalidate")
		if err := f.Invalidate(ctx, key); err != nil {
			w.count("invalidate_error")
		}
	case n < 99:
		w.count("clear")
		if err := f.Clear(ctx); err != nil {
			w.count("clear_error")
		}
	default:
		w.count("clear_leases")
		if err := f.ClearBeingCalculated(ctx); err != nil {
			w.count("clear_leases_error")
		}
	}
	return nil
}

// withLazy adds lazy=1 to a store URL, so that store.Open does not check the server.
func withLazy(u string) string {
	if strings.Contains(u, "?") {
		return u + "&lazy=1"
	}
	return u + "?lazy=1"
}
