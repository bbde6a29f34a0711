package cachier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/store"
)

// Invalidation beyond one key works with version counters (store.Versioner), so that
// it costs O(1) however many entries it covers and every process sees it on its next
// call: an entry records the values of the counters it depends on (its tags, its
// prefix, the namespaces of the functions it depends on) when it is stored, and it
// is a miss once any of them has moved. Invalidating bumps a counter; the entries
// themselves stay until they are overwritten or cleaned up.

// # Invalidating during a computation
//
// Invalidate(arg) and Clear must not let a computation that began before them store a
// result that then outlives them: fn may have read the data before it changed.
// Every function has an invalidation epoch, the version counter "ns:<namespace>"
// (which its dependents record too), and, in each process, an invalidation
// generation per namespace (nsGuard, shared by every Func wrapped under the
// namespace). Each Func also has a lock (invMu). The protocol needs no
// compare-and-swap:
//
//   - Invalidate and Clear, under the Func's lock, move the generation, bump the
//     epoch, then delete.
//   - A computing writer W reads the generation (G0), then, in the one round trip that
//     re-checks the entry and takes the lease (store.MissPath.ReadOrAcquire, or, on a
//     store that claims natively, the call's first read, store.Claimer.ReadOrClaim,
//     with G0 read before it), the epoch (E0), before fn runs; it records E0 in its entry. Once fn returns, under
//     the Func's read lock, it writes only if the generation still reads G0. The
//     write, the release of the lease and a read of the epoch (E2) after the write are
//     one round trip (store.MissPath.WriteAndRelease); W deletes what it wrote if E2
//     != E0. On a store no other process sees (store.ProcessLocal) the generation is
//     all there is to check: no epoch is read or recorded for it.
//   - A caller that waits for another computation (or re-checks under the lease)
//     read the epoch (Ew) when it began, and accepts an entry only if the entry
//     recorded Ew. Overwrite and Refresh accept no stored entry at all.
//   - In the process, callers after Invalidate or Clear do not join a computation
//     that began before: its single flight is forgotten.
//
// Why it holds, for an invalidation I (generation move, bump B, delete D) and a writer
// W (read G0, read E0, compute, write S, read E2), all on a linearizable store, with
// the data changed before I began:
//
//   - E0 read after B: fn began after the data changed; its result is good.
//   - I through W's Func, G0 read before I: I holds the lock from before B to after
//     D, and W checks the generation and writes S under the read lock. Either W
//     checks after I, sees the generation moved and writes nothing; or S comes
//     before I takes the lock, hence before D, and D deletes the entry. No reader in
//     the process can see W's entry after I returned.
//   - I in another process, or through another Func of the namespace in W's process
//     (which takes its own lock: two Funcs of a namespace behave as two processes),
//     E0 read before B: if W checks the generation after I moved it, W writes
//     nothing. Otherwise, if S comes before D, D deletes the entry. If S comes after
//     D, E2 is read after S, so after B; bumps never repeat a value, so E2 != E0
//     and W deletes its entry.
//   - A waiter that began after I returned read Ew after B, so Ew != E0 for any W
//     whose E0 was read before B: it never accepts W's entry; it waits for W's lease
//     and computes itself.
//   - Tags, prefixes and dependencies need no check at write time: their counters
//     are read with E0, recorded in the entry, and checked by every reader, so an
//     entry written after their bump is a miss from the start.
//
// Dropping the check of the epoch before the write (E1, which the protocol read
// before two-round-trip misses) changes none of these cases: the generation answers
// it in the process, and E2 answers it across processes whenever D precedes S,
// which is the only case E1 could see (B precedes E1 precedes S). What remains, on a
// store shared between processes: when another process's B and D both fall between
// W's E0 read and its write S, a caller that does not wait may read W's entry during
// the time from S to W's delete (the end of the WriteAndRelease round trip and one
// Delete). Two writers racing may also delete each other's entries. Both cost at
// most a miss later, and no result outlives the invalidation. W also reads the
// generation again after S and after it filled its own local copy: a move deletes
// what it wrote and drops the copy. That covers, with no round trip, an invalidation
// through another Func of the namespace (its own lock) that falls between W's check
// and S on a store.ProcessLocal store, which has no E2, and one that dropped the
// local copies between S and W's fill (TestInvalidateThroughAnotherFuncBetweenCheckAndWrite).
// A store without version counters (no store.Versioner) has only the generation:
// invalidations in other processes are then not seen by computations under way.

// nsGuard is a namespace's invalidation generation in this process (see above).
type nsGuard struct {
	gen atomic.Uint64
}

// guards holds the generation of every namespace wrapped in this process.
var guards sync.Map // namespace -> *nsGuard

// guardOf returns the namespace's generation, shared by every Func wrapped under it.
func guardOf(ns string) *nsGuard {
	g, _ := guards.LoadOrStore(ns, &nsGuard{})
	return g.(*nsGuard)
}

// ErrNoVersions reports tags, prefixes or dependencies on a store that does not keep
// version counters (it does not implement store.Versioner).
var ErrNoVersions = errors.New("cachier: the store keeps no version counters (store.Versioner); tags, prefixes and DependsOn need them")

// Counter names. They are shared by every function using a store, which is what lets
// cachier.InvalidateTags reach entries of many functions.
func tagCounter(tag string) string { return "tag:" + tag }

// A prefix is a tag (easy_cache's rule): InvalidateTags(ctx, st, p) drops the entries
// made under Prefix p, and InvalidatePrefix(ctx, st, t) those tagged t.
func prefixCounter(p string) string     { return tagCounter(p) }
func namespaceCounter(ns string) string { return "ns:" + ns }

// Tags tags every entry of the function: InvalidateTags(ctx, store, tag) drops them,
// along with the entries of other functions that carry the tag. Only accepted by
// Wrap.
func Tags(tags ...string) Option {
	return opt("Tags", inWrap, func(s *settings) error {
		for _, t := range tags {
			if t == "" {
				return errors.New("empty tag")
			}
		}
		s.tags = append(s.tags, tags...)
		return nil
	})
}

// TagsOf tags each entry with tags computed from its argument, such as "user:42";
// Func.InvalidateTags(ctx, arg) bumps the tags of one argument. Only accepted by Wrap.
func TagsOf[A any](fn func(A) []string) Option {
	return opt("TagsOf", inWrap, func(s *settings) error {
		if fn == nil {
			return errors.New("nil function")
		}
		s.tagsOf = fn
		return nil
	})
}

// ResultTags tags each entry with tags computed from its argument and the value the
// function returned (easy_cache's meta.returned_value): one tag per book in a user's
// list of favourite books, say, so that changing a book drops every list that has it.
// Only accepted by Wrap.
func ResultTags[A, R any](fn func(A, R) []string) Option {
	return opt("ResultTags", inWrap, func(s *settings) error {
		if fn == nil {
			return errors.New("nil function")
		}
		s.resultTags = fn
		return nil
	})
}

// Prefix puts a prefix computed from the argument in front of every key ("shop:7"),
// and makes it work as a tag too: InvalidatePrefix, or InvalidateTags with the
// prefix as the tag, drops every entry made under it (easy_cache's prefix). The
// prefix is matched whole: invalidating "shop:1" does not drop entries under
// "shop:12" or "shop:1:x". Only accepted by Wrap.
func Prefix[A any](fn func(A) string) Option {
	return opt("Prefix", inWrap, func(s *settings) error {
		if fn == nil {
			return errors.New("nil function")
		}
		s.prefix = fn
		return nil
	})
}

// StaleAfterFunc computes the stale limit of each entry from its argument and result
// (easy_cache's callable timeout), in place of StaleAfter for that entry; zero or
// negative falls back to StaleAfter. MaxAge still applies. Only accepted by Wrap.
func StaleAfterFunc[A, R any](fn func(A, R) time.Duration) Option {
	return opt("StaleAfterFunc", inWrap, func(s *settings) error {
		if fn == nil {
			return errors.New("nil function")
		}
		s.ttlFunc = fn
		return nil
	})
}

// A Parent is something other caches can depend on: a *Func, or a named cache.
type Parent interface {
	// Namespace identifies the parent.
	Namespace() string
	// Dependencies names the version counters of the parent's own parents,
	// transitively.
	Dependencies() []string
}

// DependsOn makes the function's entries depend on its parents (cacheman's dependent
// caches): invalidating or clearing a parent invalidates them, transitively, in every
// process. A parent must exist before its dependents, so no cycle can be declared.
// Only accepted by Wrap.
func DependsOn(parents ...Parent) Option {
	return opt("DependsOn", inWrap, func(s *settings) error {
		for _, p := range parents {
			if p == nil {
				return errors.New("nil parent")
			}
			s.parents = append(s.parents, p)
		}
		return nil
	})
}

// Dependencies returns the version counters the function's entries depend on
// through DependsOn: its parents' namespaces and theirs, transitively.
func (f *Func[A, R]) Dependencies() []string { return slices.Clone(f.tags.parentDeps) }

// tagging is a function's configuration of dependencies, checked at Wrap.
type tagging[A, R any] struct {
	static     []string // counter names
	tagsOf     func(A) []string
	resultTags func(A, R) []string
	prefix     func(A) string
	ttlOf      func(A, R) time.Duration
	parentDeps []string
}

func (t *tagging[A, R]) needsVersions() bool {
	return len(t.static) > 0 || t.tagsOf != nil || t.resultTags != nil || t.prefix != nil || len(t.parentDeps) > 0
}

// hasMeta reports whether entries may carry metadata that a hit must check.
func (t *tagging[A, R]) hasMeta() bool { return t.needsVersions() || t.ttlOf != nil }

func newTagging[A, R any](s *settings, self string) (tagging[A, R], error) {
	var t tagging[A, R]
	for _, tag := range s.tags {
		t.static = append(t.static, tagCounter(tag))
	}
	var ok bool
	if s.tagsOf != nil {
		if t.tagsOf, ok = s.tagsOf.(func(A) []string); !ok {
			return t, typeMismatch[A, R]("TagsOf", s.tagsOf)
		}
	}
	if s.resultTags != nil {
		if t.resultTags, ok = s.resultTags.(func(A, R) []string); !ok {
			return t, typeMismatch[A, R]("ResultTags", s.resultTags)
		}
	}
	if s.prefix != nil {
		if t.prefix, ok = s.prefix.(func(A) string); !ok {
			return t, typeMismatch[A, R]("Prefix", s.prefix)
		}
	}
	if s.ttlFunc != nil {
		if t.ttlOf, ok = s.ttlFunc.(func(A, R) time.Duration); !ok {
			return t, typeMismatch[A, R]("StaleAfterFunc", s.ttlFunc)
		}
	}
	for _, p := range s.parents {
		if p.Namespace() == self {
			return t, fmt.Errorf("%w: DependsOn: %s cannot depend on itself", ErrOption, self)
		}
		for _, d := range append([]string{namespaceCounter(p.Namespace())}, p.Dependencies()...) {
			if d == namespaceCounter(self) {
				return t, fmt.Errorf("%w: DependsOn: %s would depend on itself through %s (a cycle)", ErrOption, self, p.Namespace())
			}
			if !slices.Contains(t.parentDeps, d) {
				t.parentDeps = append(t.parentDeps, d)
			}
		}
	}
	return t, nil
}

func typeMismatch[A, R any](name string, fn any) error {
	var a A
	var r R
	return fmt.Errorf("%w: %s function is %T, but the wrapped function takes %T and returns %T", ErrOption, name, fn, a, r)
}

// counterNames returns the counters an entry for arg depends on before its result is
// known.
func (f *Func[A, R]) counterNames(arg A) []string {
	t := &f.tags
	names := slices.Clone(t.static)
	if t.tagsOf != nil {
		for _, tag := range t.tagsOf(arg) {
			names = append(names, tagCounter(tag))
		}
	}
	if t.prefix != nil {
		names = append(names, prefixCounter(t.prefix(arg)))
	}
	return append(names, t.parentDeps...)
}

// epoch is a function's invalidation epoch as one caller read it: ok is false when
// the store keeps no counters.
type epoch struct {
	v  uint64
	ok bool
}

// readEpoch reads the function's invalidation epoch.
func (f *Func[A, R]) readEpoch(ctx context.Context, s *settings) (epoch, error) {
	if _, ok := s.store.(store.Versioner); !ok {
		return epoch{}, nil
	}
	vs, err := versions(ctx, s, []string{f.epochName})
	switch {
	case noCounters(err):
		return epoch{}, nil // a store that cannot keep this counter: no epoch, as without counters
	case err != nil:
		return epoch{}, err
	}
	return epoch{v: vs[0], ok: true}, nil
}

// noCounters reports an error saying that the store cannot keep counters at all (a
// wrapper that hides the store's own counters from the portable layer), as opposed to
// failing now.
func noCounters(err error) bool {
	return errors.Is(err, store.ErrInvalidKey) || errors.Is(err, errors.ErrUnsupported)
}

// writeCounters returns the counters a computation reads before it runs, to record
// them in its entry: counterNames, and the function's invalidation epoch when the
// store keeps counters.
func (f *Func[A, R]) writeCounters(s *settings, arg A) []string {
	names := f.counterNames(arg)
	if _, ok := s.store.(store.Versioner); ok {
		names = append(names, f.epochName)
	}
	return names
}

// missCounters returns the counters a computation of the miss path reads before it
// runs: counterNames, and the function's invalidation epoch when the store keeps
// counters and other processes may see it (on a store.ProcessLocal store the
// namespace's guard is all there is to check, so no epoch is read or recorded).
func (f *Func[A, R]) missCounters(s *settings, arg A) []string {
	names := f.counterNames(arg)
	if _, ok := s.store.(store.Versioner); ok && !processLocal(s.store) {
		names = append(names, f.epochName)
	}
	return names
}

// hasDeps reports whether an entry depends on counters other than the function's own
// epoch, which only a waiter checks.
func (f *Func[A, R]) hasDeps(ds []envelope.Dep) bool {
	own := f.epochName
	for _, d := range ds {
		if d.Name != own {
			return true
		}
	}
	return false
}

// recordedEpoch returns the invalidation epoch recorded in an entry's dependencies.
func (f *Func[A, R]) recordedEpoch(ds []envelope.Dep) (uint64, bool) {
	own := f.epochName
	for _, d := range ds {
		if d.Name == own {
			return d.Version, true
		}
	}
	return 0, false
}

// epochStill reports whether the function's invalidation epoch still reads e0, so
// that the entry for k computed under e0 may be stored. When it moved (an Invalidate
// or Clear ran since the computation began) or cannot be read, it counts and logs why
// the entry is not kept.
func (f *Func[A, R]) epochStill(ctx context.Context, s *settings, k store.Key, e0 uint64) bool {
	now, err := f.readEpoch(ctx, s)
	if err == nil && now.v == e0 {
		return true
	}
	f.stats.invalidated.Add(1)
	if s.verbose {
		f.trace(s, "cachier: invalidated while computing; the result is returned, not kept", "key", k.String())
	}
	return false
}

// versions reads the current values of names.
func versions(ctx context.Context, s *settings, names []string) ([]uint64, error) {
	v, ok := s.store.(store.Versioner)
	if !ok {
		return nil, ErrNoVersions
	}
	ctx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	defer cancel()
	return v.Versions(ctx, names)
}

// deps pairs counter names with their current values.
func deps(ctx context.Context, s *settings, names []string) ([]envelope.Dep, error) {
	if len(names) == 0 {
		return nil, nil
	}
	vs, err := versions(ctx, s, names)
	if err != nil {
		return nil, err
	}
	out := make([]envelope.Dep, len(names))
	for i, n := range names {
		out[i] = envelope.Dep{Name: n, Version: vs[i]}
	}
	return out, nil
}

// stale reports the first dependency of an entry whose counter has moved, using the
// values read together with the entry where there are some.
func (f *Func[A, R]) movedDep(ctx context.Context, s *settings, ds []envelope.Dep, known map[string]uint64) (string, error) {
	// The function's own epoch is not a dependency: Invalidate(arg) moves it, and it
	// must not drop the other keys. Only a caller that waited checks it (accept).
	own := f.epochName
	var missing []string
	for _, d := range ds {
		if d.Name == own {
			continue
		}
		if _, ok := known[d.Name]; !ok {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) > 0 {
		vs, err := versions(ctx, s, missing)
		if err != nil {
			return "", err
		}
		if known == nil {
			known = make(map[string]uint64, len(missing))
		}
		for i, n := range missing {
			known[n] = vs[i]
		}
	}
	for _, d := range ds {
		if d.Name != own && known[d.Name] != d.Version {
			return d.Name, nil
		}
	}
	return "", nil
}

func bump(ctx context.Context, st store.Driver, timeout time.Duration, names ...string) error {
	if st == nil {
		return fmt.Errorf("%w: nil store", ErrOption)
	}
	v, ok := store.Adapt(st).(store.Versioner)
	if !ok {
		return ErrNoVersions
	}
	for _, n := range names {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := v.Bump(ctx, n)
		cancel()
		if err != nil {
			return fmt.Errorf("cachier: bump %q: %w", n, err)
		}
	}
	return changedCounters(ctx, store.Adapt(st), timeout)
}

// InvalidateTags drops every entry carrying any of the tags, of every function using
// the store, in every process, in O(1) per tag.
func InvalidateTags(ctx context.Context, st store.Driver, tags ...string) error {
	names := make([]string, len(tags))
	for i, t := range tags {
		names[i] = tagCounter(t)
	}
	return bump(ctx, st, defaultSettings().storeTimeout, names...)
}

// InvalidatePrefix drops every entry made under the prefix (see Prefix; the prefix is
// matched whole) of every function using the store, in every process, in O(1). A
// prefix is a tag: this is InvalidateTags(ctx, st, prefix).
func InvalidatePrefix(ctx context.Context, st store.Driver, prefix string) error {
	return bump(ctx, st, defaultSettings().storeTimeout, prefixCounter(prefix))
}

// InvalidateTags drops every entry carrying a tag that TagsOf computes for arg, of
// this and every other function using the store.
func (f *Func[A, R]) InvalidateTags(ctx context.Context, arg A) error {
	if f.tags.tagsOf == nil {
		return fmt.Errorf("%w: InvalidateTags needs TagsOf", ErrOption)
	}
	s, err := f.settings(nil)
	if err != nil {
		return err
	}
	var names []string
	for _, t := range f.tags.tagsOf(arg) {
		names = append(names, tagCounter(t))
	}
	return bump(ctx, s.store, s.storeTimeout, names...)
}

// InvalidatePrefix drops every entry under the prefix that Prefix computes for arg.
func (f *Func[A, R]) InvalidatePrefix(ctx context.Context, arg A) error {
	if f.tags.prefix == nil {
		return fmt.Errorf("%w: InvalidatePrefix needs Prefix", ErrOption)
	}
	s, err := f.settings(nil)
	if err != nil {
		return err
	}
	return bump(ctx, s.store, s.storeTimeout, prefixCounter(f.tags.prefix(arg)))
}

// bumpEpoch bumps the function's own counter: its invalidation epoch, which its
// computations under way check, and which its dependents' entries record. Stores
// without counters have neither.
func (f *Func[A, R]) bumpEpoch(ctx context.Context, s *settings) error {
	if _, ok := s.store.(store.Versioner); !ok {
		return nil
	}
	return bump(ctx, s.store, s.storeTimeout, namespaceCounter(f.ns))
}
