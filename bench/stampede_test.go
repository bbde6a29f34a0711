package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	_ "github.com/cachier-go/cachier/store/all"
	gocache "github.com/eko/gocache/lib/v4/cache"
	gocachestore "github.com/eko/gocache/lib/v4/store"
	gocacheredis "github.com/eko/gocache/store/redis/v4"
	rediscache "github.com/go-redis/cache/v9"
	"github.com/maypok86/otter/v2"
	"github.com/peterbourgon/diskv"
	"github.com/redis/go-redis/v9"
	"github.com/viccon/sturdyc"
)

// The stampede: stampedeProcs processes, stampedeGoroutines goroutines each, call one
// cold key of a function that takes stampedeFnTime, all at once.
const (
	stampedeProcs      = 4
	stampedeGoroutines = 64
	stampedeFnTime     = 100 * time.Millisecond
)

// Environment of a re-executed worker.
const (
	envWorker = "CACHIER_BENCH_WORKER" // the implementation to run
	envDir    = "CACHIER_BENCH_DIR"    // shared directory: the go signal, file stores
	envKey    = "CACHIER_BENCH_KEY"    // the cold key of this round
	envRedis  = "CACHIER_BENCH_REDIS"  // redis URL
	envURL    = "CACHIER_BENCH_STORE"  // cachier store URL
)

// stampedeImpl is one implementation of the stampede.
type stampedeImpl struct {
	name, shared string
	// needs names the server the implementation needs ("", "redis", or a store
	// URL maker).
	needsRedis bool
	storeURL   func(t *testing.T, dir string) string // cachier only
	// get builds, in a worker, the memoized function. fn is the slow function.
	get func(ctx context.Context, fn func(context.Context, string) (string, error)) (func(context.Context, string) (string, error), error)
}

var stampedeImpls = []stampedeImpl{
	{name: "cachier (filestore)", shared: "files, one directory", storeURL: func(t *testing.T, dir string) string {
		return "file://" + filepath.Join(dir, "cachier")
	}, get: cachierGet},
	{name: "cachier (redisstore)", shared: "Redis", storeURL: func(t *testing.T, _ string) string {
		return testserver.Redis(t).URL
	}, get: cachierGet},
	{name: "cachier (sqlstore, PostgreSQL)", shared: "PostgreSQL", storeURL: func(t *testing.T, _ string) string {
		return testserver.Postgres(t).URL
	}, get: cachierGet},
	{name: "cachier (memcachestore)", shared: "memcached", storeURL: func(t *testing.T, _ string) string {
		return "memcache://" + testserver.Memcached(t).Addr
	}, get: cachierGet},
	{name: "mutex+map memo", shared: "per process", get: func(_ context.Context, fn func(context.Context, string) (string, error)) (func(context.Context, string) (string, error), error) {
		var mu sync.Mutex
		m := map[string]string{}
		return func(ctx context.Context, k string) (string, error) {
			mu.Lock()
			v, ok := m[k]
			mu.Unlock()
			if ok {
				return v, nil
			}
			v, err := fn(ctx, k)
			if err == nil {
				mu.Lock()
				m[k] = v
				mu.Unlock()
			}
			return v, err
		}, nil
	}},
	{name: "github.com/viccon/sturdyc", shared: "per process", get: func(_ context.Context, fn func(context.Context, string) (string, error)) (func(context.Context, string) (string, error), error) {
		c := sturdyc.New[string](1000, 1, time.Hour, 10)
		return func(ctx context.Context, k string) (string, error) {
			return c.GetOrFetch(ctx, k, func(ctx context.Context) (string, error) { return fn(ctx, k) })
		}, nil
	}},
	{name: "github.com/maypok86/otter/v2", shared: "per process", get: func(_ context.Context, fn func(context.Context, string) (string, error)) (func(context.Context, string) (string, error), error) {
		c, err := otter.New(&otter.Options[string, string]{})
		if err != nil {
			return nil, err
		}
		loader := otter.LoaderFunc[string, string](fn)
		return func(ctx context.Context, k string) (string, error) { return c.Get(ctx, k, loader) }, nil
	}},
	{name: "github.com/go-redis/cache/v9", shared: "Redis", needsRedis: true, get: func(_ context.Context, fn func(context.Context, string) (string, error)) (func(context.Context, string) (string, error), error) {
		c, err := workerRedis()
		if err != nil {
			return nil, err
		}
		rc := rediscache.New(&rediscache.Options{Redis: c})
		return func(ctx context.Context, k string) (string, error) {
			var v string
			err := rc.Once(&rediscache.Item{Ctx: ctx, Key: "stampede:rc:" + k, Value: &v, TTL: time.Hour,
				Do: func(it *rediscache.Item) (any, error) { return fn(it.Context(), k) }})
			return v, err
		}, nil
	}},
	{name: "github.com/eko/gocache/lib/v4", shared: "Redis", needsRedis: true, get: func(_ context.Context, fn func(context.Context, string) (string, error)) (func(context.Context, string) (string, error), error) {
		c, err := workerRedis()
		if err != nil {
			return nil, err
		}
		lc := gocache.NewLoadable[string](func(ctx context.Context, key any) (string, []gocachestore.Option, error) {
			v, err := fn(ctx, strings.TrimPrefix(key.(string), "stampede:gc:"))
			return v, []gocachestore.Option{gocachestore.WithExpiration(time.Hour)}, err
		}, gocache.New[string](gocacheredis.NewRedis(c)))
		return func(ctx context.Context, k string) (string, error) { return lc.Get(ctx, "stampede:gc:"+k) }, nil
	}},
	{name: "github.com/peterbourgon/diskv", shared: "files, one directory", get: func(_ context.Context, fn func(context.Context, string) (string, error)) (func(context.Context, string) (string, error), error) {
		dir := os.Getenv(envDir)
		dv := diskv.New(diskv.Options{BasePath: filepath.Join(dir, "diskv"), TempDir: filepath.Join(dir, "diskv-tmp")})
		return func(ctx context.Context, k string) (string, error) {
			if b, err := dv.Read(k); err == nil {
				return string(b), nil
			}
			v, err := fn(ctx, k)
			if err == nil {
				err = dv.Write(k, []byte(v))
			}
			return v, err
		}, nil
	}},
}

func workerRedis() (*redis.Client, error) {
	opt, err := redis.ParseURL(os.Getenv(envRedis))
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(opt)
	// Connect before the go signal, as cachier's stores do.
	if err := c.Ping(context.Background()).Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// cachierGet wraps fn with cachier on the store named by the worker's URL.
func cachierGet(ctx context.Context, fn func(context.Context, string) (string, error)) (func(context.Context, string) (string, error), error) {
	st, err := store.Open(ctx, os.Getenv(envURL))
	if err != nil {
		return nil, err
	}
	f, err := cachier.Wrap(fn, cachier.Name("bench/stampede"), cachier.WithStore(st))
	if err != nil {
		return nil, err
	}
	// Connect, and create tables where the store does so on first use, before the go
	// signal: the peers' clients are warm too.
	_, _ = st.Get(ctx, store.Key{Namespace: "bench/stampede", ID: "warm-up"})
	return func(ctx context.Context, k string) (string, error) { return f.Call(ctx, k) }, nil
}

// stampedeWorker runs in a re-executed test binary: it builds the implementation,
// says "ready", waits for the go signal (a file), calls the key from
// stampedeGoroutines goroutines, and prints how many computations ran here and when
// the last caller had its result. It returns the exit code.
func stampedeWorker() int {
	name := os.Getenv(envWorker)
	fail := func(err error) int { fmt.Fprintf(os.Stderr, "bench worker %s: %v\n", name, err); return 3 }
	var impl *stampedeImpl
	for i := range stampedeImpls {
		if stampedeImpls[i].name == name {
			impl = &stampedeImpls[i]
		}
	}
	if impl == nil {
		return fail(errors.New("unknown implementation"))
	}
	ctx := context.Background()
	var computations atomic.Int64
	slow := func(ctx context.Context, k string) (string, error) {
		computations.Add(1)
		time.Sleep(stampedeFnTime)
		return "value of " + k, nil
	}
	get, err := impl.get(ctx, slow)
	if err != nil {
		return fail(err)
	}
	key := os.Getenv(envKey)
	goFile := filepath.Join(os.Getenv(envDir), "go-"+key)
	fmt.Println("ready")
	for {
		if _, err := os.Stat(goFile); err == nil {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		last   atomic.Int64
	)
	for range stampedeGoroutines {
		wg.Go(func() {
			v, err := get(ctx, key)
			if err != nil || v != "value of "+key {
				failed.Add(1)
				fmt.Fprintf(os.Stderr, "bench worker %s: got %q, %v\n", name, v, err)
			}
			now := time.Now().UnixNano()
			for {
				l := last.Load()
				if now <= l || last.CompareAndSwap(l, now) {
					break
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("done %d %d %d\n", computations.Load(), last.Load(), failed.Load())
	return 0
}

// runStampedes runs each implementation's stampede for the rounds and adds the
// results to rep.
func runStampedes(t *testing.T, rep *Report) {
	rep.StampedeSetup.Processes, rep.StampedeSetup.Goroutines, rep.StampedeSetup.FnTime = stampedeProcs, stampedeGoroutines, stampedeFnTime
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, impl := range stampedeImpls {
		res := StampedeResult{Impl: impl.name, Shared: impl.shared, Callers: stampedeProcs * stampedeGoroutines}
		env := []string{envWorker + "=" + impl.name, envDir + "=" + dir}
		// Servers: probe in a subtest, so a missing one skips only this row.
		ok := t.Run(strings.NewReplacer("/", "_", " ", "_").Replace(impl.name), func(t *testing.T) {
			if impl.storeURL != nil {
				env = append(env, envURL+"="+impl.storeURL(t, dir))
			}
			if impl.needsRedis {
				env = append(env, envRedis+"="+testserver.Redis(t).URL)
			}
		})
		if !ok {
			res.Err = "server missing"
			rep.Stampede = append(rep.Stampede, res)
			continue
		}
		for round := range *flagRounds {
			comps, wall, err := stampedeRound(exe, append(env, envKey+"=k"+randHex(6)), dir)
			if err != nil {
				res.Err = err.Error()
				t.Logf("stampede %s: %v", impl.name, err)
				break
			}
			t.Logf("stampede round %d: %s: %d computations, %v", round+1, impl.name, comps, wall)
			res.Computations = append(res.Computations, float64(comps))
			res.Wall = append(res.Wall, wall)
		}
		rep.Stampede = append(rep.Stampede, res)
	}
}

// stampedeRound starts the workers, gives the go signal when all are ready, and
// returns the computations they ran and the time until the last caller had its
// result.
func stampedeRound(exe string, env []string, dir string) (computations int, wall time.Duration, err error) {
	type worker struct {
		cmd *exec.Cmd
		out *bufio.Scanner
	}
	var key string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, envKey+"="); ok {
			key = v
		}
	}
	workers := make([]worker, stampedeProcs)
	defer func() {
		for _, w := range workers {
			if w.cmd != nil && w.cmd.Process != nil && w.cmd.ProcessState == nil {
				_ = w.cmd.Process.Kill() // only on failure: our own child, by its PID
				_ = w.cmd.Wait()
			}
		}
	}()
	for i := range workers {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), env...)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return 0, 0, err
		}
		if err := cmd.Start(); err != nil {
			return 0, 0, fmt.Errorf("start worker: %w", err)
		}
		workers[i] = worker{cmd: cmd, out: bufio.NewScanner(stdout)}
	}
	for _, w := range workers {
		if !w.out.Scan() || w.out.Text() != "ready" {
			return 0, 0, fmt.Errorf("worker did not get ready (%q)", w.out.Text())
		}
	}
	start := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "go-"+key), nil, 0o600); err != nil {
		return 0, 0, err
	}
	var last int64
	for _, w := range workers {
		if !w.out.Scan() {
			return 0, 0, errors.New("worker exited without a result")
		}
		f := strings.Fields(w.out.Text())
		if len(f) != 4 || f[0] != "done" {
			return 0, 0, fmt.Errorf("worker said %q", w.out.Text())
		}
		n, _ := strconv.Atoi(f[1])
		end, _ := strconv.ParseInt(f[2], 10, 64)
		if f[3] != "0" {
			return 0, 0, fmt.Errorf("%s callers failed in a worker", f[3])
		}
		computations += n
		last = max(last, end)
		if err := w.cmd.Wait(); err != nil {
			return 0, 0, fmt.Errorf("worker: %w", err)
		}
	}
	return computations, time.Duration(last - start.UnixNano()), nil
}
