package named

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// Errors returned by this package. Compare with errors.Is.
var (
	// ErrOption reports a bad option or name.
	ErrOption = errors.New("named: bad option")
	// ErrExists reports a second Register of the same name in one manager.
	ErrExists = errors.New("named: cache already registered")
	// ErrCycle reports a dependency that would make a cache its own ancestor.
	ErrCycle = errors.New("named: dependency cycle")
	// ErrClosed reports a Register on a closed manager.
	ErrClosed = errors.New("named: manager closed")
)

// Defaults of [Options].
const (
	DefaultName          = "default"
	DefaultCheckInterval = time.Second
	DefaultSyncInterval  = time.Second
	DefaultIOTimeout     = 30 * time.Second
)

// Options configure a [Manager]. A nil *Options, and every zero field, means the default.
type Options struct {
	// Name namespaces the manager's caches in the store ("cachier/named/<Name>") and
	// their version counters ("named:<Name>:<cache>"). Processes that share caches use
	// the same Name. It must not contain ':'. Default "default".
	Name string
	// Clock tells the time for autosync rules and version checks. Default: clock.Real().
	Clock cachier.Clock
	// Logger receives load, save and invalidation reports. Default: slog.Default().
	Logger *slog.Logger
	// CheckInterval bounds how long a cache keeps serving its map after another process
	// invalidated it: an access after CheckInterval reads the version counters of the
	// cache and its ancestors (one round trip) and reloads if one moved. Negative: check
	// on every access. Default 1 s.
	CheckInterval time.Duration
	// SyncInterval is how often a background goroutine applies the autosync rules
	// (a change that makes a rule hold also wakes it). Negative: no goroutine; call
	// [Manager.SaveDue] yourself. Default 1 s.
	SyncInterval time.Duration
	// IOTimeout bounds the loads (store reads, Loader and Builder runs), version
	// checks and saves made on behalf of calls without a context (Get, Set, ..., and
	// autosync). Default 30 s.
	IOTimeout time.Duration
}

// A Manager holds named caches over one store. It is safe for concurrent use.
type Manager struct {
	st      store.Store
	ver     store.Versioner // nil: invalidation is local only
	name    string
	ns      string
	clock   cachier.Clock
	log     *slog.Logger
	check   time.Duration
	ioLimit time.Duration

	mu      sync.Mutex
	caches  map[string]handle
	parents map[string][]string // declared parents of every registered cache
	closed  bool

	nudge chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
}

// handle is the untyped face of a *Cache[K, V] that the manager drives.
type handle interface {
	cacheName() string
	// drop forgets the in-memory map; with deleteSaved it also deletes what was saved.
	drop(ctx context.Context, deleteSaved bool) error
	// save writes the map: always with force, else only if it has unsaved changes.
	save(ctx context.Context, force bool) error
	// due reports whether an autosync rule holds at now.
	due(now time.Time) bool
}

// NewManager returns a manager of named caches kept in st. The manager does not own
// st: Close leaves it open. If st implements [store.Versioner] (every store in this
// module does), invalidation reaches every process sharing st; otherwise it is local
// to this process.
func NewManager(d store.Driver, opts *Options) (*Manager, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil store", ErrOption)
	}
	st := store.Adapt(d)
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if strings.Contains(o.Name, ":") {
		return nil, fmt.Errorf("%w: manager name %q contains ':'", ErrOption, o.Name)
	}
	ns := "cachier/named/" + o.Name
	if err := store.ValidateNamespace(ns); err != nil {
		return nil, fmt.Errorf("%w: manager name: %w", ErrOption, err)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = DefaultIOTimeout
	}
	m := &Manager{
		st:      st,
		name:    o.Name,
		ns:      ns,
		clock:   o.Clock,
		log:     o.Logger.With("manager", o.Name),
		check:   o.CheckInterval,
		ioLimit: o.IOTimeout,
		caches:  make(map[string]handle),
		parents: make(map[string][]string),
		nudge:   make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	m.ver, _ = st.(store.Versioner)
	if o.SyncInterval > 0 {
		m.wg.Add(1)
		go m.loop(o.SyncInterval)
	}
	return m, nil
}

// Name returns the manager's name.
func (m *Manager) Name() string { return m.name }

// Names returns the names of the registered caches, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.caches))
	for n := range m.caches {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CrossProcess reports whether invalidation reaches other processes, that is whether
// the store implements [store.Versioner].
func (m *Manager) CrossProcess() bool { return m.ver != nil }

func checkName(name string) error {
	if err := (store.Key{Namespace: "x", ID: name}).Validate(); err != nil {
		return fmt.Errorf("cache name: %w", err)
	}
	return nil
}

// counter returns the name of a cache's version counter.
func (m *Manager) counter(cache string) string { return "named:" + m.name + ":" + cache }

// counters returns the version counters a cache depends on: its own, then its
// ancestors' in the order they are first reached.
func (m *Manager) counters(cache string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := []string{m.counter(cache)}
	seen := map[string]bool{cache: true}
	queue := []string{cache}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		for _, p := range m.parents[c] {
			if !seen[p] {
				seen[p] = true
				names = append(names, m.counter(p))
				queue = append(queue, p)
			}
		}
	}
	return names
}

// dependents returns the registered caches that have cache as an ancestor, and cache
// itself if registered, in breadth-first order.
func (m *Manager) dependents(cache string) []handle {
	m.mu.Lock()
	defer m.mu.Unlock()
	children := make(map[string][]string)
	for c, ps := range m.parents {
		for _, p := range ps {
			children[p] = append(children[p], c)
		}
	}
	var out []handle
	seen := map[string]bool{cache: true}
	queue := []string{cache}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if h, ok := m.caches[c]; ok {
			out = append(out, h)
		}
		kids := children[c]
		slices.Sort(kids)
		for _, k := range kids {
			if !seen[k] {
				seen[k] = true
				queue = append(queue, k)
			}
		}
	}
	return out
}

// add registers h with its parents, rejecting duplicates and cycles.
func (m *Manager) add(h handle, parents []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := h.cacheName()
	switch {
	case m.closed:
		return ErrClosed
	case m.caches[name] != nil:
		return fmt.Errorf("%w: %q", ErrExists, name)
	}
	// A cycle closes iff name is reachable from one of its new parents.
	for _, p := range parents {
		if path := m.pathTo(p, name, nil, map[string]bool{}); path != nil {
			return fmt.Errorf("%w: %s", ErrCycle, strings.Join(append([]string{name}, path...), " -> "))
		}
	}
	m.caches[name] = h
	m.parents[name] = slices.Compact(slices.Sorted(slices.Values(parents)))
	return nil
}

// pathTo returns the parent chain from "from" to "to", or nil. m.mu is held.
func (m *Manager) pathTo(from, to string, path []string, seen map[string]bool) []string {
	path = append(path, from)
	if from == to {
		return path
	}
	if seen[from] {
		return nil
	}
	seen[from] = true
	for _, p := range m.parents[from] {
		if found := m.pathTo(p, to, path, seen); found != nil {
			return found
		}
	}
	return nil
}

// Invalidate drops the named cache and, transitively, every cache that depends on
// it, here at once and in every other process sharing the store on its next access
// after at most CheckInterval. It costs one counter increment in the store however
// many caches and keys it covers; dropped caches are reloaded (finding nothing valid)
// or rebuilt by their Builder on their next access. The name need not be registered
// in this process. Unsaved changes of the dropped caches are discarded.
//
// Without a [store.Versioner], invalidation is local: the saved maps of the cache
// and of its dependents registered here are deleted instead, and other processes
// keep their in-memory maps until they load them again.
func (m *Manager) Invalidate(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrOption, err)
	}
	var errs []error
	if m.ver != nil {
		// Bump first: a load that starts after this sees the new counter and rejects
		// the old saved map; then drop what is in memory.
		if _, err := m.ver.Bump(ctx, m.counter(name)); err != nil {
			return fmt.Errorf("named: invalidate %q: %w", name, err)
		}
	}
	for _, h := range m.dependents(name) {
		if err := h.drop(ctx, m.ver == nil); err != nil {
			errs = append(errs, err)
		}
	}
	m.log.Debug("named: invalidated", "cache", name, "cross_process", m.ver != nil)
	return errors.Join(errs...)
}

// Save saves every registered persistent cache that has unsaved changes.
func (m *Manager) Save(ctx context.Context) error {
	var errs []error
	for _, h := range m.handles() {
		if err := h.save(ctx, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SaveDue saves each cache whose autosync rules hold at the clock's current time. The
// background goroutine calls it every SyncInterval; call it yourself when
// SyncInterval is negative.
func (m *Manager) SaveDue(ctx context.Context) error {
	now := m.clock.Now()
	var errs []error
	for _, h := range m.handles() {
		if h.due(now) {
			if err := h.save(ctx, false); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) handles() []handle {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs := make([]handle, 0, len(m.caches))
	for _, n := range slices.Sorted(maps.Keys(m.caches)) {
		hs = append(hs, m.caches[n])
	}
	return hs
}

// Lookup returns the cache registered in m under name, if it has key type K and value
// type V (cacheman's retrieve_cache).
func Lookup[K comparable, V any](m *Manager, name string) (*Cache[K, V], bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.caches[name].(*Cache[K, V])
	return c, ok
}

// wake asks the background goroutine to apply the autosync rules now.
func (m *Manager) wake() {
	select {
	case m.nudge <- struct{}{}:
	default:
	}
}

func (m *Manager) loop(every time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
		case <-m.nudge:
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.ioLimit)
		if err := m.SaveDue(ctx); err != nil {
			m.log.Warn("named: autosync", "err", err)
		}
		cancel()
	}
}

// Close stops autosync and saves every persistent cache with unsaved changes. It
// returns the save errors (the caches stay dirty, so a later Save can retry). Caches
// keep working in memory after Close; Register fails. Close does not close the store.
// Calling Close again only saves again.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.done)
	}
	m.mu.Unlock()
	m.wg.Wait()
	return m.Save(ctx)
}

// ioCtx returns a context for store operations made on behalf of a call without one.
func (m *Manager) ioCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), m.ioLimit)
}

// ErrHasDependents reports a Deregister of a cache that registered caches depend on.
var ErrHasDependents = errors.New("named: cache has registered dependents")

// ErrNotRegistered reports a name that no cache of the manager has.
var ErrNotRegistered = errors.New("named: no such cache")

// Deregister removes the cache name from m (cacheman's deregister_cache), without
// saving it or touching what was saved: call [Cache.Save] first to keep unsaved
// changes. With withDependents, the registered caches that depend on it, directly
// or not, are removed too; without, a cache that has registered dependents is refused
// with an error matching [ErrHasDependents]. It returns the names removed, the cache's
// first. A name not registered is an error matching [ErrNotRegistered].
//
// A removed cache is no longer saved by the manager (Save, SaveDue, autosync,
// Close) nor found by [Lookup], and its name can be registered again. A *Cache the
// caller still holds keeps its map in memory and is usable, but is no longer synced.
func (m *Manager) Deregister(name string, withDependents bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.caches[name]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotRegistered, name)
	}
	// Every registered cache that has name as an ancestor.
	children := make(map[string][]string)
	for c, ps := range m.parents {
		for _, p := range ps {
			children[p] = append(children[p], c)
		}
	}
	removed := []string{name}
	seen := map[string]bool{name: true}
	for i := 0; i < len(removed); i++ {
		kids := children[removed[i]]
		slices.Sort(kids)
		for _, k := range kids {
			if !seen[k] && m.caches[k] != nil {
				seen[k] = true
				removed = append(removed, k)
			}
		}
	}
	if len(removed) > 1 && !withDependents {
		return nil, fmt.Errorf("%w: %q has %s; deregister them first or pass withDependents", ErrHasDependents, name, strings.Join(removed[1:], ", "))
	}
	for _, n := range removed {
		delete(m.caches, n)
		delete(m.parents, n)
	}
	return removed, nil
}

// DeregisterAll removes every cache from m (cacheman's deregister_all_caches), as
// Deregister does, and returns their names, sorted. The manager stays open.
func (m *Manager) DeregisterAll() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := slices.Sorted(maps.Keys(m.caches))
	clear(m.caches)
	clear(m.parents)
	return names
}
