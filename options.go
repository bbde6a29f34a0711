package cachier

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

// ErrOption reports an option used where it cannot apply, or with a bad value.
var ErrOption = errors.New("cachier: bad option")

// scope says where an option may be used.
type scope uint8

const (
	inWrap     scope = 1 << iota // cachier.Wrap
	inCall                       // Func.Call
	inDefaults                   // cachier.SetDefaults
	inBatch                      // cachier.WrapBatch only (batch options)
	everywhere = inWrap | inCall | inDefaults
)

// An Option configures a Func. The same vocabulary serves Wrap, Call and SetDefaults;
// an option that cannot change per call (the store, the codec, the key function, the
// name) is an error at Call rather than silently ignored.
type Option struct {
	name  string
	scope scope
	apply func(*settings) error
}

// String returns the option's name, for messages.
func (o Option) String() string { return o.name }

// settings is the resolved configuration of one call.
type settings struct {
	store        store.Store
	staleAfter   time.Duration // 0: never stale
	maxAge       time.Duration // read only when maxAgeSet; zero or negative: always stale
	maxAgeSet    bool
	nextTime     bool
	waitTimeout  time.Duration // 0: wait until the holder finishes or its lease expires
	allowNil     bool
	cleanupEvery time.Duration // 0: no background cleanup
	sizeLimit    int           // 0: no limit
	keyFunc      any           // func(A) (string, error), checked at Wrap
	name         string
	version      string
	codec        Codec
	logger       *slog.Logger
	clock        Clock
	leaseTTL     time.Duration
	maxSkew      time.Duration // how far ahead another writer's clock may run
	storeTimeout time.Duration
	failClosed   bool
	observer     Observer
	expiry       expirySettings

	errRules        []errRule     // CacheErrors, CacheNotFound
	computeTimeout  time.Duration // 0: fn runs as long as it takes
	cancelAbandoned bool

	// Invalidation (Wrap only): tags, prefix and per-entry TTL functions are typed
	// by the wrapped function and checked by Wrap.
	tags       []string
	tagsOf     any
	resultTags any
	prefix     any
	ttlFunc    any
	parents    []Parent

	skip      bool
	overwrite bool
	verbose   bool

	claimFirst bool // a call's first read is store.Claimer.ReadOrClaim (claimsFirst), resolved with the rest

	batch batchSettings // WrapBatch only (batch.go)

	gen   uint64       // the SetDefaults generation these settings were resolved under
	renew *renewer     // renews the leases held under these settings (one clock, one TTL)
	tier  tierSettings // LocalTier (Wrap only)
}

func defaultSettings() settings {
	return settings{
		codec:        CBOR,
		leaseTTL:     30 * time.Second,
		maxSkew:      DefaultMaxClockSkew,
		storeTimeout: 10 * time.Second,
		clock:        clock.Real(),
	}
}

// effectiveLimit is min(the entry's own limit or StaleAfter, MaxAge); 0 means never
// stale, negative always.
func (s *settings) effectiveLimit(entryTTL time.Duration) time.Duration {
	limit := s.staleAfter
	if entryTTL > 0 {
		limit = entryTTL
	}
	if !s.maxAgeSet {
		return limit
	}
	if s.maxAge <= 0 { // MaxAge(0): no age is young enough (cachier's max_age=0)
		return -1
	}
	if limit == 0 || s.maxAge < limit {
		return s.maxAge
	}
	return limit
}

func applyAll(s *settings, where scope, opts []Option) error {
	for _, o := range opts {
		if o.apply == nil {
			return fmt.Errorf("%w: zero Option; build options with the cachier functions", ErrOption)
		}
		if o.scope&where == 0 {
			return fmt.Errorf("%w: %s cannot be used in %s; %s", ErrOption, o.name, scopeName(where), whereAllowed(o.scope))
		}
		if err := o.apply(s); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrOption, o.name, err)
		}
	}
	return nil
}

func scopeName(s scope) string {
	switch s {
	case inWrap:
		return "Wrap"
	case inCall:
		return "Call"
	case inBatch:
		return "WrapBatch"
	default:
		return "SetDefaults"
	}
}

func whereAllowed(s scope) string {
	var where []string
	for _, x := range []scope{inWrap, inCall, inDefaults, inBatch} {
		if s&x != 0 {
			where = append(where, scopeName(x))
		}
	}
	return fmt.Sprintf("it is accepted by %v", where)
}

func opt(name string, sc scope, apply func(*settings) error) Option {
	return Option{name: name, scope: sc, apply: apply}
}

// WithStore sets where results are kept: any store driver (see package store's
// "Writing a store"), used through the portable layer [store.Adapt]. The default is a
// filestore in $XDG_CACHE_HOME/cachier, else ~/.cachier. Not accepted by Call.
func WithStore(st store.Driver) Option {
	return opt("WithStore", inWrap|inDefaults, func(s *settings) error {
		if st == nil {
			return errors.New("nil store")
		}
		s.store = store.Adapt(st)
		return nil
	})
}

// StaleAfter sets how long a result stays fresh (cachier's stale_after). Zero, the
// default, means results never go stale.
func StaleAfter(d time.Duration) Option {
	return opt("StaleAfter", everywhere, func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("negative duration %v", d)
		}
		s.staleAfter = d
		return nil
	})
}

// MaxAge sets a limit on the age of a result for this call: the effective limit is
// min(StaleAfter, MaxAge). A zero or negative MaxAge makes every result stale.
func MaxAge(d time.Duration) Option {
	return opt("MaxAge", everywhere, func(s *settings) error {
		s.maxAge, s.maxAgeSet = d, true
		return nil
	})
}

// NextTime makes a stale result be returned at once while one background refresh,
// across goroutines and processes, recomputes it (cachier's next_time).
func NextTime(on bool) Option {
	return opt("NextTime", everywhere, func(s *settings) error { s.nextTime = on; return nil })
}

// WaitForCalcTimeout bounds how long a caller waits for another caller's computation
// of the same key before computing itself (cachier's wait_for_calc_timeout). Zero, the
// default, waits until the computation finishes or its holder's lease expires.
func WaitForCalcTimeout(d time.Duration) Option {
	return opt("WaitForCalcTimeout", everywhere, func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("negative duration %v", d)
		}
		s.waitTimeout = d
		return nil
	})
}

// AllowNil caches nil results (nil pointer, map, slice or interface), which are
// otherwise returned but not stored (cachier's allow_none).
func AllowNil(on bool) Option {
	return opt("AllowNil", everywhere, func(s *settings) error { s.allowNil = on; return nil })
}

// CleanupStale deletes stale entries in the background, at most once per interval per
// function (cachier's cleanup_stale and cleanup_interval). It needs StaleAfter. With
// StaleAfterFunc, whose entries have stale limits of their own, it deletes only the
// entries past their expiry (see ExpireAfter), never one by StaleAfter alone.
func CleanupStale(interval time.Duration) Option {
	return opt("CleanupStale", inWrap|inDefaults, func(s *settings) error {
		if interval <= 0 {
			return fmt.Errorf("interval %v is not positive", interval)
		}
		s.cleanupEvery = interval
		return nil
	})
}

// EntrySizeLimit stops results whose encoding is larger than n bytes from being
// stored; they are still returned (cachier's entry_size_limit). Zero means no limit.
func EntrySizeLimit(n int) Option {
	return opt("EntrySizeLimit", everywhere, func(s *settings) error {
		if n < 0 {
			return fmt.Errorf("negative size %d", n)
		}
		s.sizeLimit = n
		return nil
	})
}

// WithKey derives the key of an argument with fn instead of hashing the argument
// (cachier's hash_func). fn must return the same string for arguments that should
// share a result and different strings otherwise; readable keys such as "user:42" are
// fine, since every store escapes them. Its argument type must be the wrapped
// function's. Only accepted by Wrap.
func WithKey[A any](fn func(A) (string, error)) Option {
	return opt("WithKey", inWrap, func(s *settings) error {
		if fn == nil {
			return errors.New("nil key function")
		}
		s.keyFunc = fn
		return nil
	})
}

// Name sets the namespace of a function's entries instead of its qualified Go name.
// It is required for anonymous functions, method values and generic functions, whose
// runtime names are not unique or not stable. Only accepted by Wrap.
func Name(name string) Option {
	return opt("Name", inWrap, func(s *settings) error {
		if err := store.ValidateNamespace(name); err != nil {
			return err
		}
		s.name = name
		return nil
	})
}

// Version becomes part of the namespace: bump it when the function's results change
// meaning, and old entries are never served again. Only accepted by Wrap.
func Version(v string) Option {
	return opt("Version", inWrap, func(s *settings) error { s.version = v; return nil })
}

// WithCodec sets how results are encoded: CBOR (the default), JSON, Gob or your own.
// []byte and string results are always stored unencoded. Not accepted by Call.
func WithCodec(c Codec) Option {
	return opt("WithCodec", inWrap|inDefaults, func(s *settings) error {
		if c == nil {
			return errors.New("nil codec")
		}
		s.codec = c
		return nil
	})
}

// WithLogger sets where cachier logs store errors, corrupt entries and, with Verbose,
// its decisions. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return opt("WithLogger", everywhere, func(s *settings) error { s.logger = l; return nil })
}

// WithClock sets the clock that stamps and ages entries and times every wait, lease
// renewal, breaker backoff and cleanup interval: a [clock.Fake] lets a test move time
// by hand instead of sleeping. Not accepted by Call.
func WithClock(c Clock) Option {
	return opt("WithClock", inWrap|inDefaults, func(s *settings) error {
		if c == nil {
			return errors.New("nil clock")
		}
		s.clock = c
		return nil
	})
}

// DefaultMaxClockSkew is MaxClockSkew's default.
const DefaultMaxClockSkew = time.Second

// MaxClockSkew states how far the clocks of the processes and machines sharing a store
// may disagree (default [DefaultMaxClockSkew]). An entry's age is measured from the
// time its writer stamped on it, by the writer's clock; cachier trusts that stamp only
// within this bound:
//
//   - a stamp up to MaxClockSkew in the future counts as age 0 (just stored);
//   - a stamp further in the future says nothing about the entry's age, so the entry
//     counts as infinitely old: stale (NextTime serves it while it refreshes, unless
//     MaxStale bounds it), expired when an expiry applies, and never a fresh hit.
//
// So MaxAge(500*time.Millisecond) never serves an entry that a clock 10s ahead
// stamped a second ago. A waiter takes another caller's result as "stored after I
// began" only when its stamp is within the bound, and Refresh never takes a stored
// result at all. Durations measured in one process (waits, backoffs, intervals) use
// the local monotonic clock and need no bound. Zero trusts no stamp in the future.
func MaxClockSkew(d time.Duration) Option {
	return opt("MaxClockSkew", everywhere, func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("negative duration %v", d)
		}
		s.maxSkew = d
		return nil
	})
}

// age returns how old an entry stamped storedAt is at now, by the rules of
// MaxClockSkew: 0 for a stamp in the future within the bound, and a practically
// infinite age for one beyond it.
func (s *settings) age(now, storedAt time.Time) time.Duration {
	d := now.Sub(storedAt)
	switch {
	case d >= 0:
		return d
	case -d <= s.maxSkew:
		return 0
	default:
		return unknownAge
	}
}

// unknownAge is the age of an entry whose stamp is too far in the future to trust.
const unknownAge = time.Duration(1<<63 - 1)

// LeaseTTL sets how long a calculation lease lasts without renewal (default 30s).
// The holder renews it every third of that while it computes, so it bounds how long a
// crashed holder can keep others waiting. Not accepted by Call.
func LeaseTTL(d time.Duration) Option {
	return opt("LeaseTTL", inWrap|inDefaults, func(s *settings) error {
		if d < 10*time.Millisecond {
			return fmt.Errorf("lease TTL %v is shorter than 10ms", d)
		}
		s.leaseTTL = d
		return nil
	})
}

// StoreTimeout bounds each store operation (default 10s), so a store that hangs
// cannot hang the call: it counts as a store error and fn's result is returned.
func StoreTimeout(d time.Duration) Option {
	return opt("StoreTimeout", inWrap|inDefaults, func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("timeout %v is not positive", d)
		}
		s.storeTimeout = d
		return nil
	})
}

// FailOnStoreError makes a store failure fail the call with the store's error,
// instead of the default: log it, count it, and return fn's result.
func FailOnStoreError(on bool) Option {
	return opt("FailOnStoreError", everywhere, func(s *settings) error { s.failClosed = on; return nil })
}

// WithObserver has every call reported to o: when it starts and how it ended (for
// tracing; see the contrib/otel module). Not accepted by Call.
func WithObserver(o Observer) Option {
	return opt("WithObserver", inWrap|inDefaults, func(s *settings) error { s.observer = o; return nil })
}

// ComputeTimeout bounds one run of fn. fn's context gets the deadline, by the Func's
// clock, and keeps the caller's values. Past it the calculation lease is no longer renewed, so that waiters in other
// processes take over once it runs out, and callers in this process that waited for
// the run get [ErrComputeTimeout]. What fn returns after its deadline is still
// returned to the caller that ran it, and a success is stored. Zero, the default,
// lets fn run as long as it takes.
func ComputeTimeout(d time.Duration) Option {
	return opt("ComputeTimeout", everywhere, func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("negative duration %v; use 0 for no limit", d)
		}
		s.computeTimeout = d
		return nil
	})
}

// CancelWhenAbandoned cancels fn's context (context.Canceled) when every caller in
// this process that waited for the run has left on its own context. By default a run
// goes on and stores its result for the next caller, even when nobody waits for it.
func CancelWhenAbandoned(on bool) Option {
	return opt("CancelWhenAbandoned", everywhere, func(s *settings) error { s.cancelAbandoned = on; return nil })
}

// SkipCache runs fn and touches no store (cachier's cachier__skip_cache).
func SkipCache() Option {
	return opt("SkipCache", inCall|inWrap, func(s *settings) error { s.skip = true; return nil })
}

// Overwrite recomputes and stores the result even if a fresh one exists (cachier's
// cachier__overwrite_cache).
func Overwrite() Option {
	return opt("Overwrite", inCall|inWrap, func(s *settings) error { s.overwrite = true; return nil })
}

// Verbose logs each decision the call makes at Info level: the key, the age of what it
// found, why it was a miss, how long it waited (cachier's cachier__verbose).
func Verbose() Option {
	return opt("Verbose", everywhere, func(s *settings) error { s.verbose = true; return nil })
}

// defaults are the options set by SetDefaults, read at call time.
var defaults struct {
	mu   sync.Mutex
	opts atomic.Pointer[[]Option]
	gen  atomic.Uint64
}

// SetDefaults replaces the options every Func starts from; options given to Wrap and
// Call take precedence. Functions already wrapped see the new defaults on their next
// call. Name, Version and WithKey are per function and are not accepted here.
func SetDefaults(opts ...Option) error {
	var s settings = defaultSettings()
	if err := applyAll(&s, inDefaults, opts); err != nil {
		return err
	}
	defaults.mu.Lock()
	defer defaults.mu.Unlock()
	cp := append([]Option(nil), opts...)
	defaults.opts.Store(&cp)
	defaults.gen.Add(1)
	return nil
}

var disabled atomic.Bool

// Disable makes every Func call its function directly, touching no store, until Enable.
func Disable() { disabled.Store(true) }

// Enable undoes Disable.
func Enable() { disabled.Store(false) }

// keyFuncFor checks that a WithKey function takes A.
func keyFuncFor[A any](kf any) (func(A) (string, error), error) {
	if kf == nil {
		return nil, nil
	}
	f, ok := kf.(func(A) (string, error))
	if !ok {
		return nil, fmt.Errorf("%w: WithKey function is %T, but the wrapped function takes %s", ErrOption, kf, reflect.TypeFor[A]())
	}
	return f, nil
}
