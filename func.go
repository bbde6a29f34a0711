package cachier

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/internal/flight"
	"github.com/cachier-go/cachier/internal/keys"
	"github.com/cachier-go/cachier/internal/tier"
	"github.com/cachier-go/cachier/store"
)

// Func is a memoized function. Create one with Wrap; it is safe for concurrent use.
type Func[A, R any] struct {
	fn       func(context.Context, A) (R, error)
	ns       string
	keyFn    func(A) (string, error)
	wrapOpts []Option
	raw      rawKind
	nillable bool

	digests *digestMemo   // nil unless A is keys.Memoizable
	scalar  keys.Scalar   // A's digest is written out (keys.DigestInt...), not encoded
	hot     *hotLevel[R]  // the typed first level; nil unless A is keys.Memoizable
	local   *localTier[R] // LocalTier, or nil
	breaker breaker       // open for a moment after a store failure
	// scopeNoted is set once Verbose has said that single flight is per process only.
	scopeNoted atomic.Bool
	tags       tagging[A, R]

	resolved    atomic.Pointer[resolvedSettings]
	stats       counters
	inflight    flight.Group[ran[R]]      // misses: one computation per key per process
	refreshing  flight.Group[R]           // NextTime: one background refresh per key per process
	backoff     backoffs                  // keys whose last background refresh failed
	lastCleanup atomic.Pointer[time.Time] // by the Func's clock; nil before the first
	sizeWarned  atomic.Bool               // an oversize result was logged (once per function)
	life        lifecycle                 // work Close waits for, leases it releases
	// inv is the namespace's invalidation generation in this process, shared by every
	// Func wrapped under it. invMu, the Func's own, orders its invalidations' bump and
	// delete against its computations' last check and their write (see
	// invalidation.go).
	inv   *nsGuard
	invMu *sync.RWMutex
	// epochName is the name of the function's invalidation epoch, "ns:<namespace>".
	epochName string
	// liveEnc makes the bytes of results kept without them (livebytes.go).
	liveEnc atomic.Pointer[liveEncoder[R]]
}

type resolvedSettings struct {
	gen uint64
	s   settings
	err error
	// hot: Calls without options may be answered by the typed first level, whose
	// entries come from src (see fastpath.go).
	hot bool
	src tier.Source
	// local: Calls without options may be answered by the local tier (localtier.go).
	local bool
}

type rawKind uint8

const (
	notRaw rawKind = iota
	rawBytes
	rawString
)

// Wrap memoizes fn. Its results are kept in a store (a filestore in the user's cache
// directory unless WithStore says otherwise), keyed by the function's namespace and
// the argument's value, so that they survive restarts and are shared by every
// goroutine, process and machine using the same store.
//
// fn must be deterministic for a given argument: every caller that shares a key must
// be happy with any one computation's result. Several arguments go in a struct.
//
// Wrap rejects an argument type that cannot be keyed faithfully (naming the field), a
// result type that cannot round-trip, a function without a stable name (use Name),
// and options that do not apply.
func Wrap[A, R any](fn func(context.Context, A) (R, error), opts ...Option) (*Func[A, R], error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil function", ErrOption)
	}
	return wrap(fn, fn, opts)
}

// WrapNoContext memoizes a function that takes no context.
func WrapNoContext[A, R any](fn func(A) (R, error), opts ...Option) (*Func[A, R], error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil function", ErrOption)
	}
	return wrap(func(_ context.Context, a A) (R, error) { return fn(a) }, fn, opts)
}

// WrapPure memoizes a function that takes no context and cannot fail.
func WrapPure[A, R any](fn func(A) R, opts ...Option) (*Func[A, R], error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil function", ErrOption)
	}
	return wrap(func(_ context.Context, a A) (R, error) { return fn(a), nil }, fn, opts)
}

func wrap[A, R any](fn func(context.Context, A) (R, error), named any, opts []Option) (*Func[A, R], error) {
	s := defaultSettings()
	if err := applyAll(&s, inWrap, opts); err != nil {
		return nil, err
	}
	if err := checkCleanup(s, opts); err != nil {
		return nil, err
	}
	f := &Func[A, R]{fn: fn, wrapOpts: append([]Option(nil), opts...)}
	name := s.name
	if name == "" {
		var err error
		if name, err = runtimeName(named); err != nil {
			return nil, err
		}
		name = qualifyMain(name)
	}
	f.ns = name
	if s.version != "" {
		f.ns += "@" + s.version
	}
	f.epochName = namespaceCounter(f.ns)
	f.inv = guardOf(f.ns)
	f.invMu = new(sync.RWMutex)
	if err := store.ValidateNamespace(f.ns); err != nil {
		return nil, fmt.Errorf("%w: namespace %q: %w; shorten it with Name", ErrOption, f.ns, err)
	}
	var err error
	if f.keyFn, err = keyFuncFor[A](s.keyFunc); err != nil {
		return nil, err
	}
	if f.keyFn == nil {
		if err := keys.Check(reflect.TypeFor[A](), keys.ForKey); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnkeyable, err)
		}
		f.scalar = keys.ScalarOf(reflect.TypeFor[A]())
		if keys.Memoizable(reflect.TypeFor[A]()) {
			f.digests = &digestMemo{}
			f.hot = &hotLevel[R]{}
		}
	}
	if s.tier.bound != 0 && !s.tier.on {
		return nil, fmt.Errorf("%w: LocalTierBound needs LocalTier", ErrOption)
	}
	if s.tier.on {
		f.local = newLocalTier[R](f.ns, s.tier)
		stopWithFunc(f, f.local.sync)
	}
	if f.tags, err = newTagging[A, R](&s, f.ns); err != nil {
		return nil, err
	}
	if _, ok := s.store.(store.Versioner); s.store != nil && !ok && f.tags.needsVersions() {
		return nil, fmt.Errorf("%w: %T", ErrNoVersions, s.store)
	}
	rt := reflect.TypeFor[R]()
	switch {
	case rt == reflect.TypeFor[[]byte]():
		f.raw = rawBytes
	case rt == reflect.TypeFor[string]():
		f.raw = rawString
	case idOf(s.codec) != envelope.Custom:
		if err := keys.Check(rt, keys.ForValue); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUncacheable, err)
		}
		if idOf(s.codec) == envelope.Gob {
			if err := checkGob(rt); err != nil {
				return nil, fmt.Errorf("%w: Gob: %w", ErrUncacheable, err)
			}
		}
	}
	switch rt.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		f.nillable = true
	}
	if err := claimNamespace(f.ns, reflect.TypeFor[A](), rt); err != nil {
		return nil, err
	}
	return f, nil
}

// anonymous matches runtime names that do not identify one function: closures
// (main.main.func1), method values (pkg.(*T).M-fm) and generic instantiations
// (pkg.F[...]), which all instantiations share.
var anonymous = regexp.MustCompile(`\.func\d+|-fm$|\[\.\.\.\]`)

func runtimeName(fn any) (string, error) {
	rf := runtime.FuncForPC(reflect.ValueOf(fn).Pointer())
	if rf == nil {
		return "", fmt.Errorf("%w: cannot find the function's name", ErrUnnamed)
	}
	name := rf.Name()
	if anonymous.MatchString(name) {
		return "", fmt.Errorf("%w: %s is an anonymous function, method value or generic function, so its name does not identify it across builds; pass cachier.Name(\"...\")", ErrUnnamed, name)
	}
	return name, nil
}

// Namespace returns the namespace of the function's entries: its name and version.
func (f *Func[A, R]) Namespace() string { return f.ns }

// Stats returns what the function did since it was wrapped.
func (f *Func[A, R]) Stats() Stats {
	st := f.stats.snapshot()
	if s, err := f.settings(nil); err == nil {
		st.SingleFlight = store.Scope(s.store).String()
	}
	return st
}

// settings resolves defaults, Wrap options and Call options, in that order. The
// result of the first two is cached until SetDefaults changes the defaults.
func (f *Func[A, R]) settings(opts []Option) (*settings, error) {
	gen := defaults.gen.Load()
	r := f.resolved.Load()
	if r == nil || r.gen != gen {
		r = &resolvedSettings{gen: gen, s: defaultSettings()}
		if d := defaults.opts.Load(); d != nil {
			r.err = applyAll(&r.s, inDefaults, *d)
		}
		if r.err == nil {
			r.err = applyAll(&r.s, inWrap, f.wrapOpts)
		}
		if r.err == nil && r.s.store == nil {
			r.s.store, r.err = DefaultStore()
		}
		if _, ok := r.s.store.(store.Versioner); r.err == nil && !ok && f.tags.needsVersions() {
			r.err = fmt.Errorf("%w: %T", ErrNoVersions, r.s.store)
		}
		if r.err == nil && f.raw == notRaw && idOf(r.s.codec) == envelope.Gob {
			if err := checkGob(reflect.TypeFor[R]()); err != nil { // Gob from SetDefaults
				r.err = fmt.Errorf("%w: Gob: %w", ErrUncacheable, err)
			}
		}
		if r.err == nil {
			r.err = r.s.checkExpiry()
		}
		r.s.gen = gen
		r.s.renew = newRenewer(r.s.clock, r.s.leaseTTL)
		r.src, _ = store.Unwrap(r.s.store).(tier.Source)
		plain := r.err == nil && r.s.observer == nil && !r.s.skip && !r.s.overwrite && !r.s.verbose
		r.hot = plain && f.hot != nil && r.src != nil // it leaves RefreshAhead's window to the usual path
		r.local = plain && r.s.expiry.refreshAhead == 0 && f.digests != nil && f.localOn(&r.s)
		r.s.claimFirst = r.err == nil && claimsFirst(r.s.store, f.hot != nil)
		f.resolved.Store(r)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(opts) == 0 {
		return &r.s, nil
	}
	s := r.s
	if err := applyAll(&s, inCall, opts); err != nil {
		return nil, err
	}
	if err := s.checkExpiry(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Key returns the store key of arg. Its ID is the argument's SHA-256 in hex, or the
// WithKey key, put behind the Prefix when there is one; the forms cannot be confused
// with one another, so two arguments share an ID only if they hash or key alike,
// whatever strings the key and prefix functions return. A key or prefix that is
// too long for a store (see store.MaxIDLen) or is not UTF-8 without NUL is hashed
// into "#<hex>"; a WithKey key that starts with '=', '#', '@' or "sha256:", or is 64
// hex digits, gets a leading '='.
func (f *Func[A, R]) Key(arg A) (store.Key, error) {
	return f.key(arg, true)
}

// groupsByArg reports whether two arguments have one key exactly when they are equal:
// the key is the digest of the argument alone (no key function, no prefix), and A is
// an integer or a bool, whose digest is its value written out (keys.Scalar). A
// string is left out: hashing a long one costs more than its 64-byte digest.
func (f *Func[A, R]) groupsByArg() bool {
	return f.keyFn == nil && f.tags.prefix == nil &&
		(f.scalar == keys.Int || f.scalar == keys.Uint || f.scalar == keys.Bool)
}

// key is Key; memo says whether the argument's digest may be looked up in and kept
// in the digest memo.
func (f *Func[A, R]) key(arg A, memo bool) (store.Key, error) {
	id, err := f.id(arg, memo)
	if err != nil {
		return store.Key{}, err
	}
	if f.keyFn == nil && f.tags.prefix == nil {
		return store.Key{Namespace: f.ns, ID: id}, nil // a hex digest: nothing to check
	}
	if f.keyFn != nil {
		id = keys.UserID(id)
	}
	if f.tags.prefix != nil {
		p := f.tags.prefix(arg)
		if p == "" {
			return store.Key{}, fmt.Errorf("%w: Prefix returned an empty prefix", ErrUnkeyable)
		}
		id = keys.PrefixedID(p, id)
	}
	return store.Key{Namespace: f.ns, ID: keys.Fit(id, store.MaxIDLen)}, nil
}

func (f *Func[A, R]) id(arg A, memo bool) (string, error) {
	if f.scalar != keys.NotScalar && !memo {
		return scalarDigest(f.scalar, &arg), nil
	}
	if f.keyFn == nil && !memo {
		id, err := keys.Digest(arg)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrUnkeyable, err)
		}
		return id, nil
	}
	if f.keyFn == nil {
		var boxed any = arg // once for the lookup and the store: a miss boxes it once
		if id, ok := f.digests.get(boxed); ok {
			return id, nil
		}
		var id string
		if f.scalar != keys.NotScalar {
			id = scalarDigest(f.scalar, &arg)
		} else {
			var err error
			if id, err = keys.Digest(arg); err != nil {
				return "", fmt.Errorf("%w: %w", ErrUnkeyable, err)
			}
		}
		f.digests.put(boxed, id)
		return id, nil
	}
	id, err := f.keyFn(arg)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: key function: %w", ErrUnkeyable, err)
	case id == "":
		return "", fmt.Errorf("%w: key function returned an empty key", ErrUnkeyable)
	}
	return id, nil
}

// scalarDigest is keys.Digest of *p, whose type is of kind sc (keys.ScalarOf): read
// by its size, as A may be any type of that kind (a named int, an int32...).
func scalarDigest[A any](sc keys.Scalar, p *A) string {
	ptr := unsafe.Pointer(p)
	switch sc {
	case keys.Bool:
		return keys.DigestBool(*(*bool)(ptr))
	case keys.String:
		return keys.DigestString(*(*string)(ptr))
	case keys.Int:
		switch unsafe.Sizeof(*p) {
		case 1:
			return keys.DigestInt(int64(*(*int8)(ptr)))
		case 2:
			return keys.DigestInt(int64(*(*int16)(ptr)))
		case 4:
			return keys.DigestInt(int64(*(*int32)(ptr)))
		}
		return keys.DigestInt(*(*int64)(ptr))
	}
	switch unsafe.Sizeof(*p) { // keys.Uint
	case 1:
		return keys.DigestUint(uint64(*(*uint8)(ptr)))
	case 2:
		return keys.DigestUint(uint64(*(*uint16)(ptr)))
	case 4:
		return keys.DigestUint(uint64(*(*uint32)(ptr)))
	}
	return keys.DigestUint(*(*uint64)(ptr))
}

// Call returns fn(ctx, arg), from the store when a fresh result is there. See the
// package documentation for what happens, step by step. opts apply to this call only.
//
// If ctx is done while the call waits for a computation, Call returns ctx.Err(); the
// computation goes on for the others and is stored.
//
// The result may be shared with other callers (see the package documentation, step
// 11): treat a slice, map or pointer result as read-only.
func (f *Func[A, R]) Call(ctx context.Context, arg A, opts ...Option) (R, error) {
	if len(opts) == 0 {
		if r := f.resolved.Load(); r != nil {
			switch {
			case r.hot:
				if v, ok := f.hotCall(r, arg); ok {
					return v, nil
				}
				// The first level answers this argument's next hits, not the digest
				// memo: on this (mostly a miss) path the digest is not memoized, which
				// saves boxing the argument and the memo's entry (3 allocations).
				if s, err := f.settings(nil); err == nil && s.observer == nil {
					key := (*store.Key)(nil) // an unkeyable argument: call decides, as before
					if k, err := f.key(arg, false); err == nil {
						key = &k
					}
					v, _, err := f.call(ctx, s, arg, key)
					return v, err
				}
			case r.local:
				if v, ok := f.localCall(r, arg); ok {
					return v, nil
				}
			}
		}
	}
	s, err := f.settings(opts)
	if err != nil {
		var zero R
		return zero, err
	}
	if s.observer == nil {
		v, _, err := f.call(ctx, s, arg, nil)
		return v, err
	}
	// The key is derived once, for the Observer and for the call.
	info := CallInfo{Namespace: f.ns, Store: fmt.Sprintf("%T", store.Unwrap(s.store))}
	var key *store.Key
	if k, err := f.Key(arg); err == nil {
		info.KeyID, key = k.ID, &k
	}
	ctx = s.observer.CallStarted(ctx, info)
	v, out, err := f.call(ctx, s, arg, key)
	out.Err = err
	s.observer.CallEnded(ctx, out)
	return v, err
}

// call is Call after the options are resolved; it reports how it answered. key is
// the argument's key when the caller has already derived it, else nil.
func (f *Func[A, R]) call(ctx context.Context, s *settings, arg A, key *store.Key) (R, Outcome, error) {
	var zero R
	if s.skip || disabled.Load() || f.life.isClosed() {
		f.stats.skipped.Add(1)
		if s.verbose {
			f.trace(s, "cachier: skipping the cache", "ns", f.ns)
		}
		v, err := f.runDirect(ctx, s, arg)
		return v, Outcome{Result: ResultSkipped, Computed: true}, err
	}
	var k store.Key
	if key != nil {
		k = *key
	} else {
		var err error
		if k, err = f.Key(arg); err != nil {
			return zero, Outcome{}, err
		}
	}
	if f.breaker.open(s.clock) {
		f.stats.bypassed.Add(1)
		if s.failClosed {
			return zero, Outcome{}, fmt.Errorf("%w: %s failed moments ago; not trying it again yet", ErrStore, f.ns)
		}
		if s.verbose {
			f.trace(s, "cachier: store failed moments ago; calling the function directly", "ns", f.ns)
		}
		// Without the store, callers in this process still share one run per key.
		return f.compute(ctx, s, k, arg, true, nil, writeMark{})
	}
	if s.cleanupEvery > 0 {
		f.maybeCleanup(s)
	}
	var cl *claimed         // the lease the lookup took, on a store that claims natively
	w0 := writesOf(s.store) // before the lookup: the computation may skip a second one
	if !s.overwrite {
		h, found, c, err := f.lookupFirst(ctx, s, k, arg)
		if err != nil {
			return zero, Outcome{}, err
		}
		cl = c
		if found {
			if v, out, served := f.serve(ctx, s, k, arg, &h); served {
				return v, out, nil
			}
		} else if f.failureAnswers(s, &h) {
			f.stats.hits.Add(1)
			if s.verbose {
				f.trace(s, "cachier: hit: a remembered error", "key", k.String(), "err", h.failed.Message)
			}
			return zero, Outcome{Result: ResultHit}, h.failed
		} else if h.corrupt != nil || h.movedBy != "" {
			f.report(s, k, &h)
		} else if s.verbose {
			f.trace(s, "cachier: miss: no entry", "key", k.String())
		}
	} else if s.verbose {
		f.trace(s, "cachier: miss: overwrite", "key", k.String())
	}
	f.stats.misses.Add(1)
	return f.compute(ctx, s, k, arg, false, cl, w0)
}

// writeMark is a store's write count (tier.Source.Writes) read before a lookup, if
// the store keeps one (ok).
type writeMark struct {
	n  uint64
	ok bool
}

func writesOf(st store.Store) writeMark {
	if src, ok := store.Unwrap(st).(tier.Source); ok {
		return writeMark{n: src.Writes(), ok: true}
	}
	return writeMark{}
}

// unchanged reports whether nothing was stored in st since m was read.
func (m writeMark) unchanged(st store.Store) bool {
	if !m.ok {
		return false
	}
	src, ok := store.Unwrap(st).(tier.Source)
	return ok && src.Writes() == m.n
}

// Refresh recomputes the result for arg and stores it (easy_cache's refresh).
func (f *Func[A, R]) Refresh(ctx context.Context, arg A, opts ...Option) (R, error) {
	return f.Call(ctx, arg, append(opts, Overwrite())...)
}

// Precache stores value as the result for arg without calling fn (cachier's
// precache_value). A value that a computation's result would not be stored as is not
// stored here either, and the error is nil: nil without [AllowNil]
// (Stats().NilsNotCached), or larger than [EntrySizeLimit] (Stats().SizeRejections).
func (f *Func[A, R]) Precache(ctx context.Context, arg A, value R) error {
	s, k, err := f.settingsAndKey(arg)
	if err != nil {
		return err
	}
	g0 := f.inv.gen.Load()
	before, err := deps(ctx, s, f.missCounters(s, arg))
	if err != nil {
		return fmt.Errorf("cachier: precache %s: %w", k, err)
	}
	return f.save(ctx, s, k, arg, value, before, g0, nil, time.Time{})
}

// Invalidate removes the result for arg, in every process sharing the store.
func (f *Func[A, R]) Invalidate(ctx context.Context, arg A) error {
	s, k, err := f.settingsAndKey(arg)
	if err != nil {
		return err
	}
	// The epoch first, then the entry: a computation under way then either sees the
	// bump and deletes what it stores, or stored before the delete (invalidation.go).
	// Callers from now on start their own computation instead of joining one under way.
	f.invMu.Lock()
	defer f.invMu.Unlock()
	f.inv.gen.Add(1)
	bumpErr := f.bumpEpoch(ctx, s)
	f.inflight.Forget(k.ID)
	f.refreshing.Forget(k.ID)
	dctx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	defer cancel()
	if err := s.store.Delete(dctx, k); err != nil {
		return errors.Join(fmt.Errorf("cachier: invalidate %s: %w", k, err), bumpErr)
	}
	var self *tierSync
	if f.local != nil {
		f.local.forget(f.tierKey(arg, k))
		self = f.local.sync
	}
	return errors.Join(bumpErr, changedNS(ctx, s, f.ns, self))
}

// Clear removes every result of the function (cachier's clear_cache).
func (f *Func[A, R]) Clear(ctx context.Context) error {
	if f.life.isClosed() {
		return fmt.Errorf("%w: %s", ErrClosed, f.ns)
	}
	s, err := f.settings(nil)
	if err != nil {
		return err
	}
	// Clearing may walk many entries, but a store that stopped answering must not
	// hold the caller forever.
	// The epoch first, then the entries: see Invalidate.
	f.invMu.Lock()
	defer f.invMu.Unlock()
	f.inv.gen.Add(1)
	bumpErr := f.bumpEpoch(ctx, s)
	f.inflight.ForgetAll()
	f.refreshing.ForgetAll()
	ctx, cancel := context.WithTimeout(ctx, 10*s.storeTimeout)
	defer cancel()
	if err := s.store.Clear(ctx, f.ns); err != nil {
		return errors.Join(fmt.Errorf("cachier: clear %s: %w", f.ns, err), bumpErr)
	}
	var self *tierSync
	if f.local != nil {
		f.local.sync.dropAll()
		self = f.local.sync
	}
	return errors.Join(bumpErr, changedNS(ctx, s, f.ns, self))
}

// ClearBeingCalculated releases every calculation lease of the function, whoever
// holds it (cachier's clear_being_calculated), and detaches the computations in
// flight in this process: they finish for the callers already waiting for them, and
// the next caller, in this process as in any other, starts its own computation
// instead of joining them. Leases expire on their own when their holder dies, so this
// is only needed to stop waiting at once.
func (f *Func[A, R]) ClearBeingCalculated(ctx context.Context) error {
	if f.life.isClosed() {
		return fmt.Errorf("%w: %s", ErrClosed, f.ns)
	}
	s, err := f.settings(nil)
	if err != nil {
		return err
	}
	f.inflight.ForgetAll()
	f.refreshing.ForgetAll()
	ctx, cancel := context.WithTimeout(ctx, 10*s.storeTimeout)
	defer cancel()
	if _, err := s.store.ReleaseAll(ctx, f.ns); err != nil {
		return fmt.Errorf("cachier: clear leases of %s: %w", f.ns, err)
	}
	return nil
}

// CacheDir returns the directory that holds the function's entries, and whether the
// store keeps them in one (cachier's cache_dpath).
func (f *Func[A, R]) CacheDir() (string, bool) {
	s, err := f.settings(nil)
	if err != nil {
		return "", false
	}
	if l, ok := s.store.(store.Locator); ok {
		return l.Dir(f.ns), true
	}
	return "", false
}

func (f *Func[A, R]) settingsAndKey(arg A) (*settings, store.Key, error) {
	if f.life.isClosed() {
		return nil, store.Key{}, fmt.Errorf("%w: %s", ErrClosed, f.ns)
	}
	s, err := f.settings(nil)
	if err != nil {
		return nil, store.Key{}, err
	}
	k, err := f.Key(arg)
	return s, k, err
}

// runDirect runs fn without the store (SkipCache, Disable, an open breaker).
func (f *Func[A, R]) runDirect(ctx context.Context, s *settings, arg A) (R, error) {
	f.stats.computations.Add(1)
	start := s.clock.Now()
	v, err := f.fn(ctx, arg)
	f.stats.observeCompute(s.clock.Now().Sub(start), err)
	return v, err
}

// found is an entry that lookup read and decoded.
type found[R any] struct {
	v R
	foundTimes

	// Why an entry that was there is a miss: reported and counted by Call only, so
	// that the re-check under the lease does not count it twice.
	corrupt error  // damaged or undecodable
	movedBy string // the counter that invalidated it

	epoch    uint64 // the function's invalidation epoch when it was computed,
	hasEpoch bool   // if the entry recorded one

	failed *CachedError // a remembered error (CacheErrors): never a value
}

// report logs and counts why a present entry was a miss.
func (f *Func[A, R]) report(s *settings, k store.Key, h *found[R]) {
	switch {
	case h.corrupt != nil:
		f.stats.decodeErrors.Add(1)
		f.logger(s).Warn("cachier: corrupt entry is a miss", "key", k.String(), "err", h.corrupt)
	case h.movedBy != "":
		f.stats.invalidated.Add(1)
		if s.verbose {
			f.trace(s, "cachier: miss: invalidated", "key", k.String(), "by", h.movedBy)
		}
	}
}

// lookup reads and decodes the entry for k, and checks the version counters it
// depends on. A miss, a corrupt entry, an invalidated entry and (unless
// FailOnStoreError) a store error all come back as ok == false.
func (f *Func[A, R]) lookup(ctx context.Context, s *settings, k store.Key, arg A) (h found[R], ok bool, err error) {
	var (
		e      store.Entry
		live   any
		known  map[string]uint64 // counter values read together with the entry
		ticket *tier.Ticket      // with a tier.Source: the entry's life, for the first level
		epoch  uint64            // and its counter epoch, read before the entry
		lkey   any               // with a local tier: the key there
		seq    uint64            // and its fill sequence, read before the entry
	)
	if f.localOn(s) {
		lkey = f.tierKey(arg, k)
		if h, ok := f.lookupLocal(s, lkey); ok {
			return h, true, nil
		}
		seq = f.local.sync.seq.Load()
	}
	ls, isLive := s.store.(store.LiveStore)
	vg, isVG := s.store.(store.VersionedGetter)
	src, isSrc := store.Unwrap(s.store).(tier.Source)
	switch {
	case isSrc && f.hot != nil:
		epoch = src.CountersEpoch()
		e, live, ticket, err = src.GetTicketed(ctx, k)
	case isLive:
		e, live, err = ls.GetLive(ctx, k)
	case isVG && f.tags.needsVersions():
		names := f.counterNames(arg)
		var vs []uint64
		opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
		e, vs, err = vg.GetVersioned(opCtx, k, names)
		cancel()
		if err == nil && len(vs) == len(names) {
			known = make(map[string]uint64, len(names))
			for i, n := range names {
				known[n] = vs[i]
			}
		}
	default:
		opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
		e, err = s.store.Get(opCtx, k)
		cancel()
	}
	return f.examine(ctx, s, k, arg, read{e: e, live: live, err: err, known: known, ticket: ticket, epoch: epoch, lkey: lkey, seq: seq})
}

// claimed is the calculation lease a caller's first read took because there was no
// entry, with what that read learnt for the computation.
type claimed struct {
	lease store.Lease
	pre   *preread
}

// claimsFirst reports whether a call's first read of st is store.Claimer.ReadOrClaim:
// when it is one round trip (ClaimsNatively), costing a hit what a Get does, and the
// lookup would otherwise be a plain Get (not a live or tiered read), on a store that
// other processes share (an in-process store takes no lease).
func claimsFirst(st store.Store, hot bool) bool {
	c, ok := st.(store.Claimer)
	if !ok || !c.ClaimsNatively() || processLocal(st) {
		return false
	}
	if _, isLive := st.(store.LiveStore); isLive {
		return false
	}
	_, isSrc := store.Unwrap(st).(tier.Source)
	return !(isSrc && hot)
}

// lookupFirst is lookup for the first read of Call. Where s.claimFirst, it is one
// store.Claimer.ReadOrClaim: a hit as lookup's, and on a miss the calculation lease
// too (cl), with the counters the computation depends on. The namespace's
// invalidation generation is read before it, as computeShared reads it before its
// own first read.
func (f *Func[A, R]) lookupFirst(ctx context.Context, s *settings, k store.Key, arg A) (h found[R], ok bool, cl *claimed, err error) {
	if !s.claimFirst {
		h, ok, err = f.lookup(ctx, s, k, arg)
		return h, ok, nil, err
	}
	var (
		lkey any
		seq  uint64
	)
	if f.localOn(s) {
		lkey = f.tierKey(arg, k)
		if h, ok := f.lookupLocal(s, lkey); ok {
			return h, true, nil, nil
		}
		seq = f.local.sync.seq.Load()
	}
	g0 := f.inv.gen.Load()
	names := f.missCounters(s, arg)
	opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	c, err := s.store.(store.Claimer).ReadOrClaim(opCtx, k, names, newOwner(), s.leaseTTL)
	cancel()
	r := read{e: c.Entry, err: c.Err, lkey: lkey, seq: seq}
	if err != nil {
		r.err = err
	} else if c.LeaseErr == nil || f.tags.needsVersions() {
		_, versioned := s.store.(store.Versioner)
		pre := f.preread(ctx, s, k, g0, names, versioned, c)
		r.known = pre.known
		if c.LeaseErr == nil {
			cl = &claimed{lease: c.Lease, pre: pre}
			if c.Lease.TakenOver {
				// Counted here, whatever becomes of the lease: a caller that joins this
				// process's computation under way gives it up to that computation, which
				// then takes a free lease (TestTakeoverByJoinerIsCounted).
				f.stats.leaseTakeovers.Add(1)
				if s.verbose {
					f.trace(s, "cachier: took over an expired lease", "key", k.String())
				}
			}
		}
	}
	h, ok, err = f.examine(ctx, s, k, arg, r)
	if cl != nil && (ok || err != nil) { // a lease is taken on a miss only; never kept past one
		f.release(ctx, s, cl.lease)
		cl = nil
	}
	return h, ok, cl, err
}

// read is what lookup (or a store.Claim) read of one entry, for examine.
type read struct {
	e      store.Entry
	live   any
	err    error
	known  map[string]uint64 // counter values read together with the entry
	ticket *tier.Ticket      // with a tier.Source: the entry's life, for the first level
	epoch  uint64            // and its counter epoch, read before the entry
	lkey   any               // with a local tier: the key there
	seq    uint64            // and its fill sequence, read before the entry
}

// examine decodes what was read for k and checks the version counters it depends
// on, as lookup describes.
func (f *Func[A, R]) examine(ctx context.Context, s *settings, k store.Key, arg A, r read) (h found[R], ok bool, err error) {
	e, live, err := r.e, r.live, r.err
	switch {
	case err == nil:
	case errors.Is(err, store.ErrCorrupt):
		h.corrupt = err
		return h, false, nil
	case errors.Is(err, store.ErrNotFound):
		f.breaker.succeeded()
		return h, false, nil
	default:
		return h, false, f.storeFailed(ctx, s, "get", k, err)
	}
	f.breaker.succeeded()
	var meta envelope.Meta
	if v, isR := live.(R); isR && live != nil {
		// An in-process value: no decoding, and only the metadata, when the function
		// has any, is read from the (trusted, in-memory) frame.
		h.v = v
		// An entry kept without its bytes (livebytes.go) has no metadata.
		if f.tags.hasMeta() && len(e.Value) > 0 {
			if meta, err = envelope.Peek(e.Value); err != nil {
				return h, false, nil
			}
		}
	} else if h.v, meta, err = f.decode(s, e.Value); err != nil {
		var fr *failedRecord
		switch {
		case errors.Is(err, errMissingRecord):
			return h, false, nil // a Batch's "not found" record: a miss for a Func
		case errors.As(err, &fr):
			// A remembered error: not found as a value, whoever reads it, but
			// Call and the waiters answer with it while it is fresh.
			h.failed = fr.err
			h.failed.StoredAt = e.StoredAt
		default:
			h.corrupt = err
			return h, false, nil
		}
	}
	h.epoch, h.hasEpoch = f.recordedEpoch(meta.Deps)
	if len(meta.Deps) > 0 {
		moved, err := f.movedDep(ctx, s, meta.Deps, r.known)
		if err != nil {
			return h, false, f.storeFailed(ctx, s, "versions", k, err)
		}
		if moved != "" {
			h.movedBy = moved
			return h, false, nil
		}
	}
	h.storedAt, h.ttl, h.expiresAt = e.StoredAt, meta.TTL, e.ExpiresAt
	if h.failed != nil {
		return h, false, nil
	}
	if r.ticket != nil {
		f.hot.put(arg, &hotEntry[R]{v: h.v, times: h.foundTimes, gen: s.gen,
			life: r.ticket, deps: f.hasDeps(meta.Deps), epoch: r.epoch})
	}
	if r.lkey != nil {
		f.fillLocal(s, r.lkey, &h, r.seq, f.hasDeps(meta.Deps), len(e.Value))
	}
	return h, true, nil
}

func (f *Func[A, R]) decode(s *settings, b []byte) (R, envelope.Meta, error) {
	return f.decodeFrom(s, b, true)
}

// decodeFrom is decode of bytes that the store may still share (shared: a raw []byte
// result is copied out of them) or that are the caller's own.
func (f *Func[A, R]) decodeFrom(s *settings, b []byte, shared bool) (R, envelope.Meta, error) {
	return f.decodeReuse(s, b, shared, nil, "")
}

// decodeReuse is decodeFrom opening the frame with envelope.OpenReuse (deps and known
// say how), for a batch that decodes many entries at once.
func (f *Func[A, R]) decodeReuse(s *settings, b []byte, shared bool, deps []envelope.Dep, known string) (R, envelope.Meta, error) {
	var zero R
	c, meta, payload, err := envelope.OpenReuse(b, deps, known)
	if err != nil {
		return zero, meta, err
	}
	if meta.Flags&envelope.Missing != 0 {
		return zero, meta, errMissingRecord
	}
	if meta.Flags&envelope.Failed != 0 {
		return zero, meta, openFailure(payload)
	}
	if meta.Flags&envelope.Nil != 0 {
		return zero, meta, nil
	}
	if s.sizeLimit > 0 && len(payload) > s.sizeLimit {
		// Not written by a Func with this limit: do not let it allocate more.
		return zero, meta, fmt.Errorf("entry of %d bytes is larger than EntrySizeLimit (%d)", len(payload), s.sizeLimit)
	}
	switch f.raw {
	case rawBytes:
		if c != envelope.Raw {
			return zero, meta, fmt.Errorf("entry has codec %d, want raw", c)
		}
		// The payload may alias a store's own bytes (memstore's GetLive shares them).
		if shared {
			payload = bytes.Clone(payload)
		}
		// R is []byte (f.raw says so). Written through unsafe rather than through an
		// interface so that the result stays on the stack: a batch of 100 hits paid
		// 100 allocations for it.
		var v R
		*(*[]byte)(unsafe.Pointer(&v)) = payload
		return v, meta, nil
	case rawString:
		if c != envelope.Raw {
			return zero, meta, fmt.Errorf("entry has codec %d, want raw", c)
		}
		var v R
		*(*string)(unsafe.Pointer(&v)) = string(payload)
		return v, meta, nil
	}
	return f.unmarshal(s, c, meta, payload)
}

// unmarshal decodes a payload of codec c with s.codec. It is apart from decodeReuse
// because its result escapes (the codec takes a pointer to it).
func (f *Func[A, R]) unmarshal(s *settings, c envelope.Codec, meta envelope.Meta, payload []byte) (R, envelope.Meta, error) {
	var v R
	codec := s.codec
	if want := idOf(codec); c != want {
		return v, meta, fmt.Errorf("entry has codec %d, want %d", c, want)
	}
	switch c {
	case envelope.CBOR:
		if err := checkCBORBudget(payload, reflect.TypeFor[R]()); err != nil {
			return v, meta, fmt.Errorf("decode %T: %w", v, err)
		}
	case envelope.JSON:
		if err := checkJSONBudget(payload, reflect.TypeFor[R]()); err != nil {
			return v, meta, fmt.Errorf("decode %T: %w", v, err)
		}
	}
	if err := codec.Unmarshal(payload, &v); err != nil {
		return v, meta, fmt.Errorf("decode %T: %w", v, err)
	}
	return v, meta, nil
}

// storeFailed logs and counts a store error, and returns it only with
// FailOnStoreError.
func (f *Func[A, R]) storeFailed(ctx context.Context, s *settings, op string, k store.Key, err error) error {
	f.stats.storeErrors.Add(1)
	if ctx.Err() == nil && opensBreaker(op, err) { // the caller giving up is not the store failing
		f.breaker.failed(s.clock)
	}
	f.logger(s).LogAttrs(ctx, slog.LevelWarn, "cachier: store error; the call goes on without the cache",
		slog.String("op", op), slog.String("key", k.String()), slog.String("err", store.Redact(err.Error())))
	if s.failClosed {
		return fmt.Errorf("%w: %s %s: %w", ErrStore, op, k, err)
	}
	return nil
}

func (f *Func[A, R]) logger(s *settings) *slog.Logger {
	if s.logger != nil {
		return s.logger
	}
	return slog.Default()
}

// trace logs one decision of a Verbose call. Callers check s.verbose first, so that
// the hit path does not build log arguments nobody reads.
func (f *Func[A, R]) trace(s *settings, msg string, args ...any) {
	f.logger(s).Info(msg, args...)
}

var (
	hostOnce sync.Once
	hostName string
	hostPID  int // os.Getpid is a system call; a miss asked for it every time
)

func newOwner() store.Owner {
	hostOnce.Do(func() {
		hostName, _ = os.Hostname()
		if hostName == "" {
			hostName = "unknown"
		}
		hostPID = os.Getpid()
	})
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return store.Owner{Host: hostName, PID: hostPID, Token: hex.EncodeToString(b[:])}
}

// digestMemo remembers the digests of recent arguments whose Go equality matches
// their encoding (keys.Memoizable), so a hot key skips encoding and hashing. It holds
// at most maxDigests arguments and starts over when full.
type digestMemo struct {
	m sync.Map // argument -> digest; lock-free reads
	n atomic.Int64
}

const maxDigests = 4096

func (d *digestMemo) get(arg any) (string, bool) {
	if d == nil {
		return "", false
	}
	id, ok := d.m.Load(arg)
	if !ok {
		return "", false
	}
	return id.(string), true
}

func (d *digestMemo) put(arg any, id string) {
	if d == nil {
		return
	}
	if d.n.Add(1) > maxDigests {
		d.m.Clear()
		d.n.Store(1)
	}
	d.m.Store(arg, id)
}

// checkCleanup rejects CleanupStale without a StaleAfter to measure staleness by,
// counting the defaults set with SetDefaults.
func checkCleanup(s settings, opts []Option) error {
	if s.cleanupEvery <= 0 || s.staleAfter > 0 {
		return nil
	}
	if d := defaults.opts.Load(); d != nil {
		c := defaultSettings()
		if applyAll(&c, inDefaults, *d) == nil && applyAll(&c, inWrap, opts) == nil && c.staleAfter > 0 {
			return nil
		}
	}
	return fmt.Errorf("%w: CleanupStale needs StaleAfter: it deletes entries older than the stale limit, and there is none", ErrOption)
}
