package named

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/internal/keys"
	"github.com/cachier-go/cachier/store"
)

// A Cache is a named, typed map kept by a [Manager]: loaded on first use, saved by
// its autosync rules, by Save and by the manager's Close, and dropped when it or an
// ancestor is invalidated in any process. It is safe for concurrent use.
//
// Methods without a context (Get, Set, ...) may load the cache or check its version
// counters first, bounded by the manager's IOTimeout; a failure there is logged and
// counted in [Stats], never returned: the cache then starts empty, or from its
// Builder. Call [Cache.Load] to load eagerly and see the error.
//
// Values are stored and returned as they are: a V that is a pointer, map or slice is
// shared with the cache, so do not modify what Get returns.
type Cache[K comparable, V any] struct {
	m       *Manager
	name    string
	key     store.Key
	cfg     config
	codecID envelope.Codec

	builder   func(context.Context) (map[K]V, error)
	loader    func(context.Context, string) (map[K]V, error)
	saver     func(context.Context, string, map[K]V) error
	validator func(map[K]V) error
	// beforeSave and afterLoad are the BeforeSave and AfterLoad hooks, or nil.
	beforeSave func(context.Context, string, map[K]V) (map[K]V, error)
	afterLoad  func(context.Context, string, map[K]V) (map[K]V, error)

	ioMu   sync.Mutex   // one save or delete of the saved map at a time
	loadMu sync.Mutex   // one load or version check at a time
	mu     sync.RWMutex // the fields below
	data   map[K]V
	loaded bool
	gen    uint64    // bumped whenever data is replaced or dropped
	names  []string  // version counters data was started under
	basis  []uint64  // their values then (nil: unknown or no Versioner)
	checks time.Time // last version check
	dirty  int       // unsaved changes
	saved  time.Time // last save or load

	// adopted are the counters, beyond the declared ones, that the loaded saved map
	// recorded (ancestors this process did not declare with DependsOn), with their
	// values: they are checked like the declared ones. Guarded by loadMu.
	adopted     []string
	adoptedVers []uint64

	st counters
}

// Stats counts what happened to one cache.
type Stats struct {
	Loads         uint64 // maps loaded from the store or the Loader
	Builds        uint64 // maps produced by the Builder
	Saves         uint64 // successful saves
	Invalidations uint64 // in-memory maps dropped: by this process, or noticed from another
	Checks        uint64 // version checks made (one round trip each)
	Stale         uint64 // saved maps not loaded because they predate an invalidation
	Corrupt       uint64 // saved maps that failed their checksum or did not decode (treated as missing)
	Rejected      uint64 // loaded maps the Validator refused
	LoadErrors    uint64 // store or Loader failures while loading (treated as missing)
	BuildErrors   uint64 // Builder failures (the cache started empty)
	SaveErrors    uint64 // failed saves (the changes stay unsaved)
	CheckErrors   uint64 // failed version checks (the map was kept)
}

type counters struct {
	loads, builds, saves, invalidations, checks, stale        atomic.Uint64
	corrupt, rejected, loadErrs, buildErrs, saveErrs, chkErrs atomic.Uint64
}

// Register adds a cache named name to m, of key type K and value type V. The name is
// the cache's identity in the store and across processes: every process sharing a
// cache registers it with the same name, types and codec. Register returns an error
// matching [ErrExists] for a name already registered in m, [ErrCycle] for a
// dependency cycle, [ErrOption] for a bad option and [ErrClosed] after Close. It does
// no I/O: the cache is loaded on first use.
func Register[K comparable, V any](m *Manager, name string, opts ...Option) (*Cache[K, V], error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOption, err)
	}
	if n := len(m.counter(name)); n > store.MaxIDLen {
		return nil, fmt.Errorf("%w: cache name %q: counter name of %d bytes is longer than %d", ErrOption, name, n, store.MaxIDLen)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o.apply == nil {
			return nil, fmt.Errorf("%w: zero Option", ErrOption)
		}
		if err := o.apply(&cfg); err != nil {
			return nil, fmt.Errorf("named: register %q: %w", name, err)
		}
	}
	c := &Cache[K, V]{
		m:       m,
		name:    name,
		key:     store.Key{Namespace: m.ns, ID: name},
		cfg:     cfg,
		codecID: codecID(cfg.codec),
	}
	var err error
	errs := []error{}
	c.builder, err = hook[func(context.Context) (map[K]V, error)]("Builder", cfg.builder)
	errs = append(errs, err)
	c.loader, err = hook[func(context.Context, string) (map[K]V, error)]("Loader", cfg.loader)
	errs = append(errs, err)
	c.saver, err = hook[func(context.Context, string, map[K]V) error]("Saver", cfg.saver)
	errs = append(errs, err)
	c.validator, err = hook[func(map[K]V) error]("Validator", cfg.validator)
	errs = append(errs, err)
	c.beforeSave, err = hook[func(context.Context, string, map[K]V) (map[K]V, error)]("BeforeSave", cfg.beforeSave)
	errs = append(errs, err)
	c.afterLoad, err = hook[func(context.Context, string, map[K]V) (map[K]V, error)]("AfterLoad", cfg.afterLoad)
	errs = append(errs, err)
	if !cfg.persistent && (c.loader != nil || c.saver != nil) {
		errs = append(errs, fmt.Errorf("%w: Loader or Saver on a cache that is not Persistent", ErrOption))
	}
	if cfg.persistent && c.saver == nil && c.codecID != envelope.Custom {
		// The map is saved with a built-in codec: it must load back as it was, or a
		// Save that succeeded leaves a map that loads as corrupt (an interface key) or
		// without some of its data (an unexported field).
		if err := keys.Check(reflect.TypeFor[map[K]V](), keys.ForSaved); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrOption, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("named: register %q: %w", name, err)
	}
	for _, p := range cfg.parents {
		if p == name {
			return nil, fmt.Errorf("named: register %q: %w: %s depends on itself", name, ErrCycle, name)
		}
	}
	if err := m.add(c, cfg.parents); err != nil {
		return nil, fmt.Errorf("named: register %q: %w", name, err)
	}
	return c, nil
}

// Name returns the cache's name.
func (c *Cache[K, V]) Name() string { return c.name }

func (c *Cache[K, V]) cacheName() string { return c.name }

func (c *Cache[K, V]) logger() *slog.Logger { return c.m.log.With("cache", c.name) }

// fresh reports, under c.mu, whether the map can be used without I/O at now.
func (c *Cache[K, V]) fresh(now time.Time) bool {
	return c.loaded && (c.m.ver == nil || (c.m.check >= 0 && now.Sub(c.checks) < c.m.check))
}

// ensure loads the cache, or checks its version counters, when needed.
func (c *Cache[K, V]) ensure() {
	now := c.m.clock.Now()
	c.mu.RLock()
	ok := c.fresh(now)
	c.mu.RUnlock()
	if ok {
		return
	}
	ctx, cancel := c.m.ioCtx()
	defer cancel()
	_ = c.refresh(ctx, now, false)
}

// ensureCtx is ensure with the caller's context.
func (c *Cache[K, V]) ensureCtx(ctx context.Context) error {
	now := c.m.clock.Now()
	c.mu.RLock()
	ok := c.fresh(now)
	c.mu.RUnlock()
	if ok {
		return nil
	}
	return c.refresh(ctx, now, false)
}

// refresh loads the cache (if not loaded, or with force) or checks its counters (if
// the last check is older than CheckInterval), reloading when one moved. It returns
// the first error met, which has already been logged and counted.
func (c *Cache[K, V]) refresh(ctx context.Context, now time.Time, force bool) error {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	c.mu.RLock()
	loaded, ok := c.loaded, c.fresh(now)
	oldNames, oldBasis := c.names, c.basis
	c.mu.RUnlock()
	if ok && !force {
		return nil // another goroutine did it while we waited
	}
	names := append(c.m.counters(c.name), c.adopted...)
	var vers []uint64
	if c.m.ver != nil {
		c.st.checks.Add(1)
		var err error
		vers, err = c.m.ver.Versions(ctx, names)
		if err == nil && len(vers) != len(names) {
			err = fmt.Errorf("store returned %d versions for %d counters", len(vers), len(names))
		}
		if err != nil {
			err = fmt.Errorf("named: %q: read versions: %w", c.name, err)
			c.st.chkErrs.Add(1)
			c.logger().Warn("named: version check failed", "err", err)
			if loaded && !force {
				c.mu.Lock()
				c.checks = now // keep the map; retry after CheckInterval
				c.mu.Unlock()
				return err
			}
			vers = nil // load without knowing the versions: saved maps are not trusted
			names = nil
			defer func() { c.mu.Lock(); c.checks = time.Time{}; c.mu.Unlock() }()
		}
	}
	if loaded && !force {
		if !moved(oldNames, oldBasis, names, vers) {
			c.mu.Lock()
			c.names, c.basis, c.checks = names, vers, now
			c.mu.Unlock()
			return nil
		}
		c.st.invalidations.Add(1)
		c.logger().Info("named: invalidated by another process; reloading")
	}
	declared := len(c.m.counters(c.name))
	names, vers = names[:min(declared, len(names))], vers[:min(declared, len(vers))]
	c.adopted, c.adoptedVers = nil, nil
	data, built, err := c.load(ctx, names, vers)
	if len(c.adopted) > 0 && len(vers) == len(names) {
		names = append(slices.Clip(names), c.adopted...)
		vers = append(slices.Clip(vers), c.adoptedVers...)
	}
	c.mu.Lock()
	c.data, c.loaded = data, true
	c.gen++
	c.names, c.basis, c.checks, c.saved = names, vers, now, now
	c.dirty = 0
	if built && c.cfg.persistent {
		c.dirty = 1
	}
	c.mu.Unlock()
	return err
}

// moved reports whether a counter known before has a different value now. Counters
// that were not known (a parent declared since) are adopted as they are.
func moved(oldNames []string, oldVers []uint64, names []string, vers []uint64) bool {
	if len(oldVers) != len(oldNames) || len(vers) != len(names) {
		return false
	}
	if len(oldNames) == 0 {
		return false
	}
	old := make(map[string]uint64, len(oldNames))
	for i, n := range oldNames {
		old[n] = oldVers[i]
	}
	for i, n := range names {
		if v, ok := old[n]; ok && v != vers[i] {
			return true
		}
	}
	return false
}

// load reads the saved map (validated), else builds one. It never fails to return a
// map; the error is the first problem met, already logged and counted.
func (c *Cache[K, V]) load(ctx context.Context, names []string, vers []uint64) (map[K]V, bool, error) {
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	if c.cfg.persistent {
		data, err := c.read(ctx, names, vers)
		if err != nil {
			note(err)
		}
		if data != nil && c.afterLoad != nil {
			if data, err = c.afterLoad(ctx, c.name, data); err != nil {
				c.st.loadErrs.Add(1)
				err = fmt.Errorf("named: %q: AfterLoad: %w", c.name, err)
				c.logger().Warn("named: AfterLoad failed; the saved map counts as missing", "err", err)
				note(err)
				data = nil
			} else if data == nil {
				data = make(map[K]V)
			}
		}
		if data != nil && c.validator != nil {
			if err := c.validator(data); err != nil {
				c.st.rejected.Add(1)
				err = fmt.Errorf("named: %q: validator rejected the saved map: %w", c.name, err)
				c.logger().Warn("named: saved map rejected", "err", err)
				note(err)
				data = nil
			}
		}
		if data != nil {
			c.st.loads.Add(1)
			return data, false, nil
		}
	}
	if c.builder == nil {
		return make(map[K]V), false, first
	}
	data, err := c.builder(ctx)
	if err != nil {
		c.st.buildErrs.Add(1)
		err = fmt.Errorf("named: %q: build: %w", c.name, err)
		c.logger().Warn("named: builder failed; the cache starts empty", "err", err)
		note(err)
		return make(map[K]V), false, first
	}
	c.st.builds.Add(1)
	if data == nil {
		data = make(map[K]V)
	}
	return data, true, first
}

// read returns the saved map, or nil when there is none usable.
func (c *Cache[K, V]) read(ctx context.Context, names []string, vers []uint64) (map[K]V, error) {
	e, err := c.m.st.Get(ctx, c.key)
	var rec record
	haveRec := false
	switch {
	case errors.Is(err, store.ErrCorrupt):
		c.st.corrupt.Add(1)
		c.logger().Warn("named: saved map is corrupt; treated as missing", "err", err)
		err = fmt.Errorf("named: %q: %w", c.name, err)
		if c.loader == nil {
			return nil, err
		}
	case errors.Is(err, store.ErrNotFound):
		if c.loader == nil {
			return nil, nil
		}
	case err != nil:
		c.st.loadErrs.Add(1)
		err = fmt.Errorf("named: %q: load: %w", c.name, err)
		c.logger().Warn("named: cannot read the saved map; treated as missing", "err", err)
		return nil, err
	default:
		rec, err = decodeRecord(e.Value)
		if err == nil && c.loader == nil && rec.kind == kindMarker && c.saver != nil {
			// This cache's own Saver keeps the map, and there is no Loader to read
			// it back: nothing to load, and nothing wrong.
			c.logger().Debug("named: the map is kept by the Saver and there is no Loader; starting without it")
			return nil, nil
		}
		if err == nil && c.loader == nil && rec.kind != kindData {
			err = fmt.Errorf("%w: a marker where a map was expected (a custom Saver saved it)", errCorrupt)
		}
		if err == nil && rec.kind == kindData && rec.codec != c.codecID {
			err = fmt.Errorf("%w: saved with codec %d, the cache uses %d", errCorrupt, rec.codec, c.codecID)
		}
		if err != nil {
			c.st.corrupt.Add(1)
			err = fmt.Errorf("named: %q: %w", c.name, err)
			c.logger().Warn("named: saved map is corrupt; treated as missing", "err", err)
			if c.loader == nil {
				return nil, err
			}
		} else {
			haveRec = true
		}
	}
	if haveRec && (vers == nil && c.m.ver != nil || stale(rec.basis, names, vers)) {
		c.st.stale.Add(1)
		c.logger().Debug("named: saved map predates an invalidation; not loaded")
		return nil, nil
	}
	if haveRec && c.m.ver != nil {
		// The record may name ancestors this process did not declare (a reader
		// without DependsOn): check them too, and keep checking them.
		extra := undeclared(rec.basis, names)
		if len(extra) > 0 {
			evers, verr := c.m.ver.Versions(ctx, extra)
			if verr == nil && len(evers) != len(extra) {
				verr = fmt.Errorf("store returned %d versions for %d counters", len(evers), len(extra))
			}
			if verr != nil {
				c.st.loadErrs.Add(1)
				verr = fmt.Errorf("named: %q: read versions of the saved map's ancestors: %w", c.name, verr)
				c.logger().Warn("named: cannot check the saved map's ancestors; treated as missing", "err", verr)
				return nil, verr
			}
			if stale(rec.basis, extra, evers) {
				c.st.stale.Add(1)
				c.logger().Debug("named: saved map predates an invalidation of an undeclared ancestor; not loaded")
				return nil, nil
			}
			c.adopted, c.adoptedVers = extra, evers
		}
	}
	if c.loader != nil {
		if !haveRec && vers == nil && c.m.ver != nil {
			return nil, err // versions unknown: do not trust anything
		}
		data, lerr := c.loader(ctx, c.name)
		switch {
		case lerr == nil:
			return data, nil
		case errors.Is(lerr, store.ErrNotFound), errors.Is(lerr, fs.ErrNotExist):
			return nil, err
		default:
			c.st.loadErrs.Add(1)
			lerr = fmt.Errorf("named: %q: loader: %w", c.name, lerr)
			c.logger().Warn("named: loader failed; treated as missing", "err", lerr)
			return nil, lerr
		}
	}
	data, err := c.decode(rec.payload)
	if err != nil {
		c.st.corrupt.Add(1)
		err = fmt.Errorf("named: %q: %w", c.name, err)
		c.logger().Warn("named: saved map does not decode; treated as missing", "err", err)
		return nil, err
	}
	return data, nil
}

// decode decodes a map. A codec that panics on hostile bytes is a corrupt entry.
func (c *Cache[K, V]) decode(p []byte) (data map[K]V, err error) {
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, fmt.Errorf("%w: codec panicked: %v", errCorrupt, r)
		}
	}()
	if err := c.cfg.codec.Unmarshal(p, &data); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if data == nil {
		data = make(map[K]V)
	}
	return data, nil
}

// Load drops the in-memory map (unsaved changes are lost) and loads the cache again
// now: from the store or the Loader, else from the Builder. It returns the first
// problem met (a store or Loader failure, a corrupt or rejected saved map, a Builder
// failure); the cache is usable either way.
func (c *Cache[K, V]) Load(ctx context.Context) error {
	return c.refresh(ctx, c.m.clock.Now(), true)
}

// Get returns the value for k and whether it was present.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	now := c.m.clock.Now()
	c.mu.RLock()
	if c.fresh(now) { // the hit path: one read lock
		v, ok := c.data[k]
		c.mu.RUnlock()
		return v, ok
	}
	c.mu.RUnlock()
	c.ensure()
	c.mu.RLock()
	v, ok := c.data[k]
	c.mu.RUnlock()
	return v, ok
}

// lockLoaded takes c.mu for writing with the cache loaded: an invalidation may drop
// the map between ensure and Lock.
func (c *Cache[K, V]) lockLoaded() {
	for {
		c.ensure()
		c.mu.Lock()
		if c.loaded {
			return
		}
		c.mu.Unlock()
	}
}

// Set stores v under k.
func (c *Cache[K, V]) Set(k K, v V) {
	c.lockLoaded()
	c.data[k] = v
	wake := c.changed()
	c.mu.Unlock()
	if wake {
		c.m.wake()
	}
}

// Delete removes k; deleting a missing key is not a change.
func (c *Cache[K, V]) Delete(k K) {
	c.lockLoaded()
	_, ok := c.data[k]
	delete(c.data, k)
	wake := ok && c.changed()
	c.mu.Unlock()
	if wake {
		c.m.wake()
	}
}

// changed counts one change under c.mu and reports whether an autosync rule now holds.
func (c *Cache[K, V]) changed() bool {
	if !c.cfg.persistent {
		return false
	}
	c.dirty++
	return due(c.cfg.rules, c.dirty, c.saved, c.m.clock.Now())
}

// Len returns the number of keys.
func (c *Cache[K, V]) Len() int {
	c.ensure()
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.data)
}

// All returns an iterator over a snapshot of the cache, taken when iteration starts,
// in no particular order. The loop body may use the cache, even modify it.
func (c *Cache[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for k, v := range c.snapshot() {
			if !yield(k, v) {
				return
			}
		}
	}
}

// Range calls f for each key and value of a snapshot of the cache until f returns
// false.
func (c *Cache[K, V]) Range(f func(k K, v V) bool) {
	for k, v := range c.All() {
		if !f(k, v) {
			return
		}
	}
}

// snapshot returns a copy of the map.
func (c *Cache[K, V]) snapshot() map[K]V {
	c.ensure()
	c.mu.RLock()
	defer c.mu.RUnlock()
	return maps.Clone(c.data)
}

// Invalidate drops this cache and, transitively, its dependents, here and in every
// process sharing the store: see [Manager.Invalidate].
func (c *Cache[K, V]) Invalidate(ctx context.Context) error {
	return c.m.Invalidate(ctx, c.name)
}

// Clear empties the cache everywhere and invalidates its dependents. Unlike
// [Cache.Invalidate], the cache stays empty (its Builder does not run): the empty map
// is saved at once if the cache is persistent.
func (c *Cache[K, V]) Clear(ctx context.Context) error {
	if err := c.m.Invalidate(ctx, c.name); err != nil {
		return err
	}
	names := c.m.counters(c.name)
	var vers []uint64
	if c.m.ver != nil {
		var err error
		vers, err = c.m.ver.Versions(ctx, names)
		if err == nil && len(vers) != len(names) {
			err = fmt.Errorf("store returned %d versions for %d counters", len(vers), len(names))
		}
		if err != nil {
			return fmt.Errorf("named: clear %q: read versions: %w", c.name, err)
		}
	}
	now := c.m.clock.Now()
	c.loadMu.Lock()
	c.mu.Lock()
	c.data, c.loaded = make(map[K]V), true
	c.gen++
	c.names, c.basis, c.checks, c.saved = names, vers, now, now
	c.dirty = 0
	c.mu.Unlock()
	c.loadMu.Unlock()
	return c.save(ctx, true)
}

// drop forgets the in-memory map, and with deleteSaved what was saved.
func (c *Cache[K, V]) drop(ctx context.Context, deleteSaved bool) error {
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	var errs []error
	if deleteSaved && c.cfg.persistent {
		if err := c.m.st.Delete(ctx, c.key); err != nil {
			errs = append(errs, fmt.Errorf("named: %q: delete saved map: %w", c.name, err))
		}
	}
	if c.cfg.deleter != nil {
		if err := c.cfg.deleter(ctx, c.name); err != nil {
			errs = append(errs, fmt.Errorf("named: %q: deleter: %w", c.name, err))
		}
	}
	c.mu.Lock()
	c.data, c.loaded = nil, false
	c.gen++
	c.dirty = 0
	c.mu.Unlock()
	c.st.invalidations.Add(1)
	return errors.Join(errs...)
}

// DeleteSaved deletes the cache's saved copy (in the store, and through its Deleter
// if it has one) and keeps its contents in memory (cacheman's
// delete_saved_cache_content). The map is saved again at the next save that finds
// unsaved changes, or at once by [Cache.Save].
func (c *Cache[K, V]) DeleteSaved(ctx context.Context) error {
	if !c.cfg.persistent {
		return nil
	}
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	var errs []error
	if err := c.m.st.Delete(ctx, c.key); err != nil && !errors.Is(err, store.ErrNotFound) {
		errs = append(errs, fmt.Errorf("named: %q: delete saved map: %w", c.name, err))
	}
	if c.cfg.deleter != nil {
		if err := c.cfg.deleter(ctx, c.name); err != nil {
			errs = append(errs, fmt.Errorf("named: %q: deleter: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// Save writes the cache now, whether or not it changed, through the store or its
// Saver, loading it first if it is not loaded yet (as cacheman's save does). A cache
// that is not persistent has nothing to save.
func (c *Cache[K, V]) Save(ctx context.Context) error {
	if !c.cfg.persistent {
		return nil
	}
	_ = c.ensureCtx(ctx) // problems are logged and counted; the map is usable anyway
	return c.save(ctx, true)
}

func (c *Cache[K, V]) save(ctx context.Context, force bool) error {
	if !c.cfg.persistent {
		return nil
	}
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	c.mu.RLock()
	if !c.loaded || (!force && c.dirty == 0) {
		c.mu.RUnlock()
		return nil
	}
	snap, n, gen := maps.Clone(c.data), c.dirty, c.gen
	names, basis := c.names, c.basis
	c.mu.RUnlock()

	err := c.write(ctx, snap, names, basis)
	if err != nil {
		c.st.saveErrs.Add(1)
		err = fmt.Errorf("named: save %q: %w", c.name, err)
		c.logger().Warn("named: save failed; changes kept for the next save", "err", err)
		return err
	}
	c.st.saves.Add(1)
	now := c.m.clock.Now()
	c.mu.Lock()
	if c.gen == gen {
		c.dirty -= n
		c.saved = now
	}
	c.mu.Unlock()
	return nil
}

// write saves snap through the Saver (and a marker) or into the store.
func (c *Cache[K, V]) write(ctx context.Context, snap map[K]V, names []string, basis []uint64) error {
	if len(names) > envelope.MaxDeps {
		return fmt.Errorf("%d ancestors: more than the %d a saved map can record", len(names)-1, envelope.MaxDeps-1)
	}
	if c.beforeSave != nil {
		var err error
		if snap, err = c.beforeSave(ctx, c.name, snap); err != nil {
			return fmt.Errorf("BeforeSave: %w", err)
		}
	}
	var b []byte
	if c.saver != nil {
		if err := c.saver(ctx, c.name, snap); err != nil {
			return fmt.Errorf("saver: %w", err)
		}
		b = encodeRecord(c.codecID, kindMarker, names, basis, nil)
	} else {
		p, err := c.cfg.codec.Marshal(snap)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		b = encodeRecord(c.codecID, kindData, names, basis, p)
	}
	return c.m.st.Set(ctx, c.key, store.Entry{Value: b, StoredAt: c.m.clock.Now()})
}

// due reports whether an autosync rule holds at now.
func (c *Cache[K, V]) due(now time.Time) bool {
	if !c.cfg.persistent {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.loaded && due(c.cfg.rules, c.dirty, c.saved, now)
}

// Dirty returns the number of changes not saved yet.
func (c *Cache[K, V]) Dirty() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.dirty
}

// Stats returns the cache's counters.
func (c *Cache[K, V]) Stats() Stats {
	s := &c.st
	return Stats{
		Loads: s.loads.Load(), Builds: s.builds.Load(), Saves: s.saves.Load(),
		Invalidations: s.invalidations.Load(), Checks: s.checks.Load(), Stale: s.stale.Load(),
		Corrupt: s.corrupt.Load(), Rejected: s.rejected.Load(), LoadErrors: s.loadErrs.Load(),
		BuildErrors: s.buildErrs.Load(), SaveErrors: s.saveErrs.Load(), CheckErrors: s.chkErrs.Load(),
	}
}
