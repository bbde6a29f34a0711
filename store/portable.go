package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/clock"
)

// Option configures [Adapt].
type Option func(*portable)

// WithClock sets the clock by which the portable layer stamps and expires leases.
// The default is the real clock. Tests pass a [clock.Fake] to expire leases without
// waiting.
func WithClock(c clock.Clock) Option {
	return func(p *portable) { p.clk = clock.OrReal(c) }
}

// Adapt returns the portable [Store] over d: the one layer every driver is used
// through. It validates keys, namespaces, counter names, owners and contexts before
// any call reaches d; decides calculation leases over d's [Swapper] (or keeps them in
// this process when d has none); keeps version counters over d's Get and Set unless d
// is a [Versioner]; and answers every capability d lacks with its fallback or with an
// error matching errors.ErrUnsupported.
//
// Adapt of a Store that Adapt returned returns it unchanged, so callers can adapt what
// they are given without checking. Adapt the driver once and share the Store: leases
// kept in process (a driver without Swapper) and local wake-ups live in the Store.
func Adapt(d Driver, opts ...Option) Store {
	if d == nil {
		return nil
	}
	if _, ok := d.(adapted); ok && len(opts) == 0 {
		return d.(Store)
	}
	if a, ok := d.(adapted); ok {
		d = a.driver()
	}
	p := &portable{d: d, clk: clock.Real()}
	for _, o := range opts {
		o(p)
	}
	p.lister, _ = d.(Lister)
	p.clearer, _ = d.(Clearer)
	p.swapper, _ = d.(Swapper)
	p.notifier, _ = d.(Notifier)
	p.nsWatch, _ = d.(NamespaceNotifier)
	p.versioner, _ = d.(Versioner)
	p.vgetter, _ = d.(VersionedGetter)
	p.roa, _ = d.(ReadOrAcquirer)
	p.roc, _ = AsGetOrCreator(d)
	p.war, _ = d.(WriteAndReleaser)
	if pl, ok := d.(ProcessLocal); ok {
		p.local = pl.ProcessLocal()
	}
	if p.swapper == nil {
		p.held = map[Key]Lease{}
	}
	live, isLive := d.(LiveStore)
	loc, isLoc := d.(Locator)
	switch {
	case isLive && isLoc:
		return &liveLocPortable{&livePortable{p, live}, loc}
	case isLive:
		return &livePortable{p, live}
	case isLoc:
		return &locPortable{p, loc}
	}
	return p
}

// Unwrap returns the driver under a Store that [Adapt] returned, or s itself.
func Unwrap(s Driver) Driver {
	if a, ok := s.(adapted); ok {
		return a.driver()
	}
	return s
}

// LeaseScope says how far the calculation leases of a Store reach.
type LeaseScope int

const (
	// LeasesShared: leases are decided in the engine, so one process computes a key
	// while every other process that shares the store waits.
	LeasesShared LeaseScope = iota
	// LeasesProcess: the driver has no atomic primitive ([Swapper]), so leases are
	// kept in this process: single flight per process only.
	LeasesProcess
	// LeasesNone: the driver is [ProcessLocal]; nobody else can see its records, and
	// the single flight of one process is all there is to coordinate.
	LeasesNone
)

// String returns a phrase for Stats and logs.
func (s LeaseScope) String() string {
	switch s {
	case LeasesProcess:
		return "single flight per process only"
	case LeasesNone:
		return "in-process store: no leases needed"
	}
	return "shared across processes"
}

// Scope reports how far the calculation leases of s reach. A Store not made by Adapt
// is trusted to share its leases.
func Scope(s Driver) LeaseScope {
	if pl, ok := Unwrap(s).(ProcessLocal); ok && pl.ProcessLocal() {
		return LeasesNone
	}
	if a, ok := s.(adapted); ok && a.base().held != nil {
		return LeasesProcess
	}
	return LeasesShared
}

type adapted interface {
	driver() Driver
	base() *portable
}

// portable is the Store over one driver.
type portable struct {
	d         Driver
	clk       clock.Clock
	lister    Lister
	clearer   Clearer
	swapper   Swapper
	notifier  Notifier
	nsWatch   NamespaceNotifier
	versioner Versioner
	vgetter   VersionedGetter
	roa       ReadOrAcquirer
	roc       GetOrCreator
	war       WriteAndReleaser
	local     bool

	mu   sync.Mutex
	held map[Key]Lease // process-local leases, when the driver has no Swapper

	watchers  atomic.Int32 // len(watch), read without mu on every write
	watchMu   sync.Mutex
	watch     map[Key]map[*watcher]struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// nsOK holds the first namespaces check found valid, filled in order and never
	// cleared (a namespace stays valid), so that the keys of those namespaces skip its
	// validation: about 2% of a memory miss.
	nsOK [4]atomic.Pointer[string]
}

func (p *portable) driver() Driver  { return p.d }
func (p *portable) base() *portable { return p }

var (
	_ Store           = (*portable)(nil)
	_ Notifier        = (*portable)(nil)
	_ Versioner       = (*portable)(nil)
	_ VersionedGetter = (*portable)(nil)
	_ Batcher         = (*portable)(nil)
	_ ProcessLocal    = (*portable)(nil)
	_ LiveStore       = (*livePortable)(nil)
	_ LazyLiveStore   = (*livePortable)(nil)
	_ LazyLiveStore   = (*liveLocPortable)(nil)
	_ Locator         = (*locPortable)(nil)
)

// errClosed is returned by every call after Close.
var errClosed = errors.New("store: closed")

// ready is where every call starts: a live context and an open store.
func (p *portable) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.closed.Load() {
		return errClosed
	}
	return nil
}

// check is the one validation of a context and a key.
func (p *portable) check(ctx context.Context, k Key) error {
	if err := p.ready(ctx); err != nil {
		return err
	}
	if !p.knownNamespace(k.Namespace) {
		if err := ValidateNamespace(k.Namespace); err != nil {
			return err
		}
		p.rememberNamespace(k.Namespace)
	}
	return k.validateID()
}

// knownNamespace reports whether ns is one of the namespaces check remembered as
// valid. A wrapped function passes the same namespace string on every call, so the
// comparison is mostly of a pointer and a length.
func (p *portable) knownNamespace(ns string) bool {
	for i := range p.nsOK {
		q := p.nsOK[i].Load()
		if q == nil {
			return false
		}
		if *q == ns {
			return true
		}
	}
	return false
}

// rememberNamespace records ns, just found valid, in a free slot of nsOK, if one is
// left.
func (p *portable) rememberNamespace(ns string) {
	for i := range p.nsOK {
		if p.nsOK[i].Load() != nil {
			continue
		}
		q := new(string) // allocated at most len(nsOK) times per store
		*q = ns
		if p.nsOK[i].CompareAndSwap(nil, q) {
			return
		}
	}
}

// checkRecord is check for the record operations (Get, Set, Delete), which also
// accept the portable layer's own records: a Store that wraps an adapted Store (to
// log, say) passes them on when it is adapted in turn.
func (p *portable) checkRecord(ctx context.Context, k Key) error {
	if err := p.ready(ctx); err != nil {
		return err
	}
	if rest, internal := strings.CutPrefix(k.Namespace, InternalPrefix); internal {
		k.Namespace = rest
		if rest == "" {
			k.Namespace = "counters"
		}
	}
	return k.Validate()
}

func (p *portable) checkNS(ctx context.Context, ns string) error {
	if err := p.ready(ctx); err != nil {
		return err
	}
	return ValidateNamespace(ns)
}

func checkOwner(o Owner) error {
	if o.Token == "" {
		return fmt.Errorf("%w: a lease owner needs a non-empty Token (one per acquisition)", ErrInvalidKey)
	}
	return nil
}

// Get implements Store.
func (p *portable) Get(ctx context.Context, k Key) (Entry, error) {
	if err := p.checkRecord(ctx, k); err != nil {
		return Entry{}, err
	}
	e, err := p.d.Get(ctx, k)
	return p.unexpired(k, e, err)
}

// Set implements Store.
func (p *portable) Set(ctx context.Context, k Key, e Entry) error {
	if err := p.checkRecord(ctx, k); err != nil {
		return err
	}
	err := p.d.Set(ctx, k, e)
	p.changed(k)
	return err
}

// Delete implements Store.
func (p *portable) Delete(ctx context.Context, k Key) error {
	if err := p.checkRecord(ctx, k); err != nil {
		return err
	}
	err := p.d.Delete(ctx, k)
	p.changed(k)
	return err
}

func unsupported(what string) error {
	return fmt.Errorf("store: %s: %w (the driver cannot list its entries)", what, errors.ErrUnsupported)
}

// Clear implements Store.
func (p *portable) Clear(ctx context.Context, ns string) error {
	if err := p.checkNS(ctx, ns); err != nil {
		return err
	}
	if p.clearer == nil {
		return unsupported("Clear")
	}
	err := p.clearer.Clear(ctx, ns)
	p.changedNS(ns)
	return err
}

// DeleteBefore implements Store.
func (p *portable) DeleteBefore(ctx context.Context, ns string, t time.Time) (int, error) {
	if err := p.checkNS(ctx, ns); err != nil {
		return 0, err
	}
	if p.lister == nil {
		return 0, unsupported("DeleteBefore")
	}
	n, err := p.lister.DeleteBefore(ctx, ns, t)
	if err == nil {
		var m int
		m, err = p.deleteExpired(ctx, ns)
		n += m
	}
	if n > 0 {
		p.changedNS(ns)
	}
	return n, err
}

// Entries implements Store.
func (p *portable) Entries(ctx context.Context, ns string) iter.Seq2[Info, error] {
	if err := p.checkNS(ctx, ns); err != nil {
		return func(yield func(Info, error) bool) { yield(Info{}, err) }
	}
	if p.lister == nil {
		return func(yield func(Info, error) bool) { yield(Info{}, unsupported("Entries")) }
	}
	return func(yield func(Info, error) bool) {
		now := p.clk.Now()
		for info, err := range p.lister.Entries(ctx, ns) {
			if err == nil && !info.ExpiresAt.IsZero() && !now.Before(info.ExpiresAt) {
				continue // expired: a miss, and gone at the next cleanup
			}
			if !yield(info, err) {
				return
			}
		}
	}
}

// Namespaces implements Store: the namespaces with entries or leases.
func (p *portable) Namespaces(ctx context.Context) ([]string, error) {
	if err := p.ready(ctx); err != nil {
		return nil, err
	}
	if p.lister == nil {
		return nil, unsupported("Namespaces")
	}
	all, err := p.lister.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(all))
	out := make([]string, 0, len(all))
	add := func(ns string) {
		if ns != "" && !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	for _, ns := range all {
		add(strings.TrimPrefix(ns, InternalPrefix)) // a lease namespace names its own; counters ("\x01") none
	}
	if p.held != nil {
		p.mu.Lock()
		for k := range p.held {
			add(k.Namespace)
		}
		p.mu.Unlock()
	}
	slices.Sort(out)
	return out, nil
}

// Close implements Store. It closes the driver once.
func (p *portable) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.closeErr = p.d.Close()
		p.watchMu.Lock()
		for _, ws := range p.watch { // let waiters look again, and see the error
			for w := range ws {
				w.wake()
			}
		}
		p.watchMu.Unlock()
	})
	return p.closeErr
}

// ProcessLocal implements [ProcessLocal]: whether the driver's records are seen by
// this process only.
func (p *portable) ProcessLocal() bool { return p.local }

// ---- batches ----

// GetMany implements Batcher, with the driver's batch or concurrent Gets.
// validateKeys is Key.Validate for each of ks, checking a namespace once for a run of
// keys that share it (a batch's keys nearly always do).
func validateKeys(ks []Key) error {
	var ns string
	for i, k := range ks {
		if i == 0 || k.Namespace != ns {
			if err := ValidateNamespace(k.Namespace); err != nil {
				return err
			}
			ns = k.Namespace
		}
		if err := validateID(k.ID); err != nil {
			return err
		}
	}
	return nil
}

func (p *portable) GetMany(ctx context.Context, ks []Key) ([]Entry, []error, error) {
	if err := p.checkNS(ctx, "-"); err != nil {
		return nil, nil, err
	}
	if err := validateKeys(ks); err != nil {
		return nil, nil, err
	}
	es, errs, err := GetMany(ctx, p.d, ks)
	if len(es) == len(ks) && len(errs) == len(ks) {
		p.unexpiredMany(ks, es, errs)
	}
	return es, errs, err
}

// GetManyInto implements IntoBatcher, with the driver's GetManyInto where it has one.
func (p *portable) GetManyInto(ctx context.Context, ks []Key, es []Entry, errs []error) error {
	if err := p.checkNS(ctx, "-"); err != nil {
		return err
	}
	if err := validateKeys(ks); err != nil {
		return err
	}
	if err := GetManyInto(ctx, p.d, ks, es, errs); err != nil {
		return err
	}
	p.unexpiredMany(ks, es, errs)
	return nil
}

var _ IntoBatcher = (*portable)(nil)

// SetMany implements Batcher, with the driver's batch or concurrent Sets.
func (p *portable) SetMany(ctx context.Context, ks []Key, es []Entry) ([]error, error) {
	if err := p.checkNS(ctx, "-"); err != nil {
		return nil, err
	}
	if len(ks) != len(es) {
		return nil, fmt.Errorf("store: SetMany of %d keys and %d entries; pass one entry per key", len(ks), len(es))
	}
	if err := validateKeys(ks); err != nil {
		return nil, err
	}
	errs, err := SetMany(ctx, p.d, ks, es)
	for _, k := range ks {
		p.changed(k)
	}
	return errs, err
}

// ---- live values and directories, forwarded only when the driver has them ----

type livePortable struct {
	*portable
	live LiveStore
}

// GetLive implements LiveStore.
func (p *livePortable) GetLive(ctx context.Context, k Key) (Entry, any, error) {
	if err := p.check(ctx, k); err != nil {
		return Entry{}, nil, err
	}
	e, v, err := p.live.GetLive(ctx, k)
	if err == nil && !e.ExpiresAt.IsZero() {
		if e, err = p.unexpired(k, e, nil); err != nil {
			return Entry{}, nil, err
		}
	}
	return e, v, err
}

// SetLive implements LiveStore.
func (p *livePortable) SetLive(ctx context.Context, k Key, e Entry, v any) error {
	if err := p.check(ctx, k); err != nil {
		return err
	}
	err := p.live.SetLive(ctx, k, e, v)
	p.changed(k)
	return err
}

// SetLazy implements LazyLiveStore: the driver's own when it has one, else SetLive
// with the bytes made at once.
func (p *livePortable) SetLazy(ctx context.Context, k Key, e Entry, v any, size int64, enc Encoder) error {
	if err := p.check(ctx, k); err != nil {
		return err
	}
	var err error
	if lz, ok := p.live.(LazyLiveStore); ok {
		err = lz.SetLazy(ctx, k, e, v, size, enc)
	} else {
		if e.Value, err = enc.Encode(v); err != nil {
			return err
		}
		err = p.live.SetLive(ctx, k, e, v)
	}
	p.changed(k)
	return err
}

type locPortable struct {
	*portable
	loc Locator
}

// Dir implements Locator.
func (p *locPortable) Dir(ns string) string { return p.loc.Dir(ns) }

// liveLocPortable is a livePortable whose driver also keeps entries in a directory.
type liveLocPortable struct {
	*livePortable
	loc Locator
}

// Dir implements Locator.
func (p *liveLocPortable) Dir(ns string) string { return p.loc.Dir(ns) }
