// Package store defines the contract between cachier and the places it keeps results.
//
// Application code should use package cachier; this package is for people writing or
// choosing a store. A store is a small, byte-oriented interface: it never decodes a
// value, never computes a key and never decides staleness. Everything every store
// would otherwise repeat (key derivation, encoding, checksums of values, staleness,
// single flight, stats) lives once, in package cachier, and what is the same for every
// engine (validation, the lease rule, version counters, the record layout of leases and
// counters) lives once, here.
//
// The package has two layers, shaped like gocloud.dev's blob.Bucket over its
// driver.Bucket and database/sql over database/sql/driver:
//
//   - a [Driver] is an engine's calls and nothing else: four required methods, plus the
//     optional capabilities it declares by implementing their interfaces;
//   - [Adapt] turns any Driver into the portable [Store] that cachier uses. It validates
//     keys and contexts once, decides leases, keeps counters, and answers each missing
//     capability with its fallback. cachier.WithStore adapts whatever it is given.
//
// # Keys
//
// A [Key] is a namespace (one per wrapped function and version) and an ID (one per
// argument). Both are arbitrary non-empty UTF-8 strings within [MaxNamespaceLen] and
// [MaxIDLen]; a store must map them onto its own naming rules (escaping, hashing) so
// that no key can escape a directory, collide with a store's internal records, or break
// an engine's syntax. Use [Key.Validate] to reject what the contract does not allow.
// Namespaces starting with byte 0x01 ([InternalPrefix]) are the portable layer's own.
//
// # Leases
//
// A calculation lease marks a key as being computed. It has an owner and an expiry: the
// holder renews it while it computes, and a holder that dies stops renewing, so its lease
// expires and another caller takes over. A lease is distinct from the entry: acquiring,
// renewing or releasing one never changes the entry, and setting an entry never
// releases a lease. The rule (held while another owner's lease is unexpired; an expired
// lease, or one with the caller's own token, may be taken; an empty token is refused)
// is written once, in this package, over the driver's [Swapper]. A takeover is a
// compare-and-swap against the dead holder's record, so of two callers taking over the
// same expired lease exactly one wins.
//
// # Errors
//
// A miss is an error matching [ErrNotFound]. A lease held by someone else is an error
// matching [ErrLeaseHeld] (usually a [*HeldError] naming the holder). Every other error is
// returned as the driver produced it, so errors.As still reaches the driver's own types.
// A capability a driver lacks, and that has no fallback, is an error matching
// errors.ErrUnsupported (memcached cannot list its keys).
//
// # Writing a store
//
// A driver implements [Driver]:
//
//	Get(ctx, k) (Entry, error)    // ErrNotFound (wrapped or not) for a miss
//	Set(ctx, k, e) error          // atomic replace; keep Value, StoredAt, ExpiresAt
//	Delete(ctx, k) error          // nil for a missing key
//	Close() error
//
// That is enough to pass the required part of storetest and to work under
// cachier.Wrap (see the example MapStore). The portable layer calls a driver only
// with valid keys and live contexts, so a driver validates nothing. Everything else is
// optional; each capability, and what happens without it:
//
//   - [Lister] (Entries, Namespaces, Clear, DeleteBefore): the command line and
//     cleanup. Without it those, and ReleaseAll of shared leases, return
//     errors.ErrUnsupported; a [Clearer] (Clear alone) still clears, and releases
//     every shared lease of a namespace without counting them.
//   - [Swapper] (Swap: create-if-absent and compare-and-swap of one record): leases
//     that hold across processes. Without it leases are kept in the process that
//     adapted the driver: "single flight per process only" ([Scope], reported by
//     cachier's Stats and Verbose log).
//   - [Notifier] (Watch: "this key may have changed"): waiters wake at once instead of
//     polling with backoff. The portable layer watches the entry and its lease record;
//     lease expiry is never notified, as a waiter knows the holder's expiry and wakes
//     itself.
//   - [NamespaceNotifier] (WatchNamespace: "some record of this namespace changed"):
//     cachier's local tier drops its copies on the change's own notification, one
//     round trip before the change marker it writes after it. Without it the tier
//     watches the markers only.
//   - [Batcher] (GetMany, SetMany): one round trip for many keys; without it,
//     concurrent single calls ([GetMany], [SetMany]). [IntoBatcher] (GetManyInto):
//     GetMany into the caller's memory, which a caller reading batch after batch
//     reuses; without it, [GetManyInto] copies GetMany's answers.
//   - Expiry needs nothing but keeping Entry.ExpiresAt: the portable layer makes a read
//     past it a miss on every read path (by its clock), hides it from listing, and has
//     DeleteBefore remove it. [Expirer]: the engine also drops such entries by itself
//     (storetest then checks the engine's TTL through a [storetest.NativeTTLHarness]).
//     [ExpiryCleaner] (DeleteExpired): cleanup in one pass of the engine; without it,
//     a walk of Entries by [Info.ExpiresAt].
//   - [ReadOrAcquirer], [WriteAndReleaser]: a miss in two round trips where the
//     engine can run a script or a transaction. Every adapted Store is a [MissPath]:
//     ReadOrAcquire (the entry, the counters the result depends on, and the lease)
//     before computing, WriteAndRelease (the entry, the release, the counters again)
//     after. Without the driver's capabilities ReadOrAcquire is one batched read and
//     the lease swap, and WriteAndRelease is Set, Release and a read of the counters.
//     A driver that is a [Versioner] answers the counter keys of these calls with its
//     own counters ([CounterRecord]).
//   - [GetOrCreator]: GetAndCreate that creates the lease record only when the key has
//     no entry, in the same round trip. Every adapted Store is a [Claimer]; with this
//     capability (and leases over Swap) its ReadOrClaim is one round trip
//     (ClaimsNatively), and cachier makes it the first read of a call: a hit costs it
//     alone and writes nothing, a miss costs it and WriteAndRelease. Without it,
//     cachier's first read stays a plain Get, as the fallback would cost a hit more.
//   - [Versioner], [VersionedGetter]: native counters, only where measurably faster.
//     Without them counters are 8-byte records kept through Get and Set (read in one
//     [Batcher] call with the entry when the driver batches).
//   - [ProcessLocal]: nobody else sees the records (an in-memory map), so cachier
//     takes no lease at all. It is separate from [LiveStore] (decoded values kept
//     beside the bytes): a tier may keep decoded values and still need shared leases.
//   - [Locator]: the directory of a namespace, for cachier's CacheDir.
//
// A driver must accept namespaces of up to MaxNamespaceLen+1 bytes, as the portable
// layer keeps the lease of {ns, id} at {"\x01"+ns, id} and counter c at {"\x01", c}.
//
// To test a driver, give package storetest a harness that makes one:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return harness{} },
//			storetest.Capabilities{})
//	}
//
// The suite runs the required tests for every driver and the tests of each capability
// the driver declares, with a fake clock for lease expiry. Run it against a real server
// (internal/testserver starts one) one store package at a time.
//
// # Conformance
//
// Every store runs the suite in package storetest unchanged.
package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on keys every store must accept.
const (
	MaxNamespaceLen = 200
	MaxIDLen        = 500
)

var (
	// ErrNotFound reports that a key has no entry (or no lease).
	ErrNotFound = errors.New("store: not found")
	// ErrLeaseHeld reports that a lease could not be acquired because another owner holds it.
	ErrLeaseHeld = errors.New("store: lease held by another owner")
	// ErrLeaseLost reports that a lease being renewed is no longer held by its owner:
	// it expired and was taken over, or it was released (for example by ReleaseAll).
	ErrLeaseLost = errors.New("store: lease lost")
	// ErrCorrupt reports an entry whose stored bytes are damaged or foreign. Stores
	// return it wrapped together with ErrNotFound (fmt.Errorf("%w: %w", ...)), so a
	// corrupt entry is a miss for callers that only check ErrNotFound, and can still
	// be logged and counted.
	ErrCorrupt = errors.New("store: corrupt entry")
	// ErrTooLarge reports that an entry is larger than the store can hold.
	ErrTooLarge = errors.New("store: entry too large")
	// ErrInvalidKey reports a key that breaks the contract (empty, too long, not UTF-8).
	ErrInvalidKey = errors.New("store: invalid key")
)

// NotFound returns the miss of k, for a driver's Get: an error matching ErrNotFound
// that names k. Its message is made only when asked for, so that a miss costs one
// small allocation.
func NotFound(k Key) error { return &notFoundError{key: k} }

type notFoundError struct{ key Key }

func (e *notFoundError) Error() string { return ErrNotFound.Error() + ": " + e.key.String() }

func (e *notFoundError) Unwrap() error { return ErrNotFound }

// Key identifies one entry.
type Key struct {
	// Namespace groups the entries of one wrapped function and version.
	Namespace string
	// ID identifies one argument within the namespace.
	ID string
}

// String returns "namespace/id", for messages.
func (k Key) String() string { return k.Namespace + "/" + k.ID }

// Validate reports whether k is within the contract. The error matches ErrInvalidKey.
func (k Key) Validate() error {
	if err := ValidateNamespace(k.Namespace); err != nil {
		return err
	}
	return k.validateID()
}

// validateID is the part of Validate that checks k.ID, for a caller that knows
// k.Namespace to be valid.
func (k Key) validateID() error {
	if k.ID == "" {
		return fmt.Errorf("%w: empty id in namespace %q", ErrInvalidKey, k.Namespace)
	}
	return validateID(k.ID)
}

// validateID is the part of Validate that checks an id.
func validateID(id string) error { return checkName("id", id, MaxIDLen) }

// checkName is the rule namespaces, IDs and counter names share: non-empty UTF-8
// without NUL, at most most bytes. what names the kind of name in the error.
func checkName(what, s string, most int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidKey, what)
	case len(s) > most:
		return fmt.Errorf("%w: %s of %d bytes is longer than %d", ErrInvalidKey, what, len(s), most)
	case !utf8.ValidString(s) || strings.ContainsRune(s, 0):
		return fmt.Errorf("%w: %s %q is not UTF-8 without NUL", ErrInvalidKey, what, s)
	}
	return nil
}

// ValidateNamespace reports whether ns is a namespace within the contract.
func ValidateNamespace(ns string) error {
	if strings.HasPrefix(ns, InternalPrefix) {
		return fmt.Errorf("%w: namespace %q starts with byte 0x01, which is kept for the store's own records", ErrInvalidKey, ns)
	}
	return checkName("namespace", ns, MaxNamespaceLen)
}

// ValidateCounter reports whether name is a version counter name within the contract
// (see [Versioner]): non-empty UTF-8 without NUL, up to [MaxIDLen] bytes, the same
// limits as an ID. The error matches ErrInvalidKey. Stores call it before they escape
// or hash the name.
func ValidateCounter(name string) error { return checkName("counter name", name, MaxIDLen) }

// Entry is a stored result: opaque bytes and the time they were stored.
type Entry struct {
	// Value is owned by the store after Set and by the caller after Get.
	Value []byte
	// StoredAt is when the value was computed. Stores keep it to at least
	// millisecond precision; cachier measures staleness from it.
	StoredAt time.Time
	// ExpiresAt, when not zero, is the time after which the entry is useless: a read
	// after it is a miss, and cleanup may remove it. A store whose engine has native
	// expiry (Redis, memcached, a MongoDB TTL index) lets the engine drop it; every
	// other store keeps it and treats a read past it as a miss.
	ExpiresAt time.Time
}

// Info describes an entry without its value, for listing.
type Info struct {
	Key      Key
	Size     int64 // bytes of Value
	StoredAt time.Time
	// ExpiresAt is the entry's Entry.ExpiresAt, or zero when it never expires or the
	// driver cannot tell without reading it. Listing skips entries past it, and the
	// portable layer's DeleteBefore removes them.
	ExpiresAt time.Time
}

// Owner identifies the holder of a lease.
type Owner struct {
	Host  string
	PID   int
	Token string // unique per acquisition; the lease belongs to whoever presents it
}

// String returns "host/pid/token", for messages.
func (o Owner) String() string { return fmt.Sprintf("%s/%d/%s", o.Host, o.PID, o.Token) }

// Lease is a calculation lease on one key.
type Lease struct {
	Key       Key
	Owner     Owner
	ExpiresAt time.Time
	// TakenOver is set by Acquire when the lease replaced another owner's expired
	// lease (a holder that died or stalled), as opposed to a free or released one.
	// Only stores that decide leases in the portable layer set it; see
	// [ReportsTakeovers].
	TakenOver bool
}

// ReportsTakeovers reports whether Acquire on s sets Lease.TakenOver: true for every
// Store that [Adapt] returned (the portable layer decides its leases), false for any
// other (which need not say).
func ReportsTakeovers(s Driver) bool {
	_, ok := s.(adapted)
	return ok
}

// HeldError is returned by Acquire when another owner holds the lease. It matches
// ErrLeaseHeld. Holder may be partly zero when the engine cannot tell who holds it.
type HeldError struct {
	Holder Lease
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("store: lease on %s held by %s until %s",
		e.Holder.Key, e.Holder.Owner, e.Holder.ExpiresAt.Format(time.RFC3339Nano))
}

// Is reports whether target is ErrLeaseHeld.
func (e *HeldError) Is(target error) bool { return target == ErrLeaseHeld }

// Store keeps entries and calculation leases. Implementations are safe for concurrent
// use by many goroutines, and, where the engine is shared, by many processes.
//
// Methods that take a context stop waiting when it is done; whether the operation
// then happened is unknown, as with any remote call.
type Store interface {
	// Get returns the entry for k, or an error matching ErrNotFound.
	Get(ctx context.Context, k Key) (Entry, error)
	// Set stores e under k, replacing any entry, atomically: a concurrent Get sees
	// the old entry or the new one, never a mix. It returns an error matching
	// ErrTooLarge if the engine cannot hold e.
	Set(ctx context.Context, k Key, e Entry) error
	// Delete removes the entry for k. Deleting a missing entry returns nil.
	Delete(ctx context.Context, k Key) error
	// Clear removes every entry of the namespace. Leases are left alone.
	Clear(ctx context.Context, namespace string) error
	// DeleteBefore removes the entries of the namespace stored strictly before t
	// (an entry stored at t stays) and returns how many it removed.
	DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error)
	// Entries lists the entries of the namespace, in no particular order.
	// Entries added or removed during the listing may or may not appear.
	Entries(ctx context.Context, namespace string) iter.Seq2[Info, error]
	// Namespaces lists the namespaces that have entries or leases.
	Namespaces(ctx context.Context) ([]string, error)

	// Acquire takes the calculation lease on k for ttl on behalf of o, atomically.
	// If another owner holds an unexpired lease, it returns an error matching
	// ErrLeaseHeld. An expired lease is taken over.
	Acquire(ctx context.Context, k Key, o Owner, ttl time.Duration) (Lease, error)
	// Renew extends a lease held by l.Owner to ttl from now, or returns an error
	// matching ErrLeaseLost if the lease is no longer l.Owner's.
	Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// Release gives the lease up if it is still l.Owner's; otherwise it does nothing.
	Release(ctx context.Context, l Lease) error
	// Leases lists the unexpired leases of the namespace.
	Leases(ctx context.Context, namespace string) iter.Seq2[Lease, error]
	// ReleaseAll removes every lease of the namespace, whoever holds it, and returns
	// how many it removed (cachier's clear_being_calculated).
	ReleaseAll(ctx context.Context, namespace string) (int, error)

	// Close releases the store's own resources. It does not close clients that the
	// user passed in.
	Close() error
}

// Notifier is an optional capability of drivers that can tell waiters that a key
// changed, so that they need not poll. It says only "this key changed": lease expiry
// is the waiter's business (it knows the holder's expiry), so drivers run no timers.
type Notifier interface {
	// Watch returns a channel that receives a value whenever the record at k may have
	// changed (set, deleted, cleared; for a Store, its lease released too), until
	// stop is called or ctx is done. Sends never block: a waiter that is slow to read
	// sees one pending value. Spurious wake-ups are allowed; missed ones are not,
	// once Watch has returned.
	Watch(ctx context.Context, k Key) (changed <-chan struct{}, stop func(), err error)
}

// NamespaceNotifier is an optional capability of Notifiers whose notifications name
// the record that changed, so that a watcher can follow a whole namespace with no
// subscription per key (PostgreSQL's LISTEN/NOTIFY). cachier's local tier uses it to
// drop its copies on the notification that the change itself sends, in the same round
// trip as the change, instead of waiting for the change marker written after it.
type NamespaceNotifier interface {
	// WatchNamespace is Watch for every record whose namespace is exactly ns (not the
	// lease records of ns, whose namespace is InternalPrefix+ns): the channel receives a
	// value whenever one may have changed. ns == InternalPrefix watches the version
	// counters. It returns an error matching errors.ErrUnsupported when the driver
	// cannot watch namespaces now (a store that polls, or whose notification connection
	// is not up); the caller then relies on Watch. When ctx carries a writer id for ns
	// (WithOrigin), changes made under that id may not wake the channel, where the
	// driver can tell them apart (PostgreSQL).
	WatchNamespace(ctx context.Context, ns string) (changed <-chan struct{}, stop func(), err error)
}

// LiveStore is an optional interface for in-process stores that can keep a decoded
// value beside its bytes, so that a hit pays for no decoding. The value is shared by
// every caller that reads it.
type LiveStore interface {
	// GetLive is Get that also returns the value attached by SetLive, or nil (after
	// a plain Set). Both the value and Entry.Value are shared with the store and
	// every other reader: they are read-only.
	GetLive(ctx context.Context, k Key) (Entry, any, error)
	// SetLive is Set that also attaches the decoded value v.
	SetLive(ctx context.Context, k Key, e Entry, v any) error
}

// LazyLiveStore is a LiveStore that can keep a live value whose bytes are made only
// when something reads the entry as bytes (Get, GetMany): a store of decoded values
// need not encode every result on the chance that it is read that way. Until the
// bytes are made, size stands for len(Entry.Value) in the store's bounds and
// listings, and GetLive returns an Entry whose Value is empty. Every [Adapt]ed
// LiveStore implements it: over a driver without it, the bytes are made at once. A
// wrapper that embeds a driver to intercept its writes must intercept SetLazy too.
type LazyLiveStore interface {
	LiveStore
	// SetLazy is SetLive of v with e.Value left empty: enc.Encode(v) makes the bytes
	// when they are first read. If it fails, reads of the bytes fail with an error
	// matching ErrCorrupt (a miss); GetLive still returns v.
	SetLazy(ctx context.Context, k Key, e Entry, v any, size int64, enc Encoder) error
}

// Encoder makes the stored bytes of a live value kept by [LazyLiveStore.SetLazy].
// It must be safe for concurrent use and return equal bytes for the same value.
type Encoder interface {
	Encode(v any) ([]byte, error)
}

// Locator is an optional interface for stores that keep entries in a directory.
type Locator interface {
	// Dir returns the directory that holds the namespace's entries.
	Dir(namespace string) string
}

// Versioner is implemented by stores that keep version counters, which cachier uses
// to invalidate by tag, by prefix and by dependency in O(1): an entry records the
// versions of the counters it depends on when it is stored, and it is a miss once any
// of them has moved. Every store in this module implements it; a third-party store
// without it still works, but Wrap rejects the options that need it.
//
// Counter names are arbitrary non-empty UTF-8 strings up to MaxIDLen bytes, escaped by
// the store like IDs; they never collide with entries or leases. A missing counter
// reads as 0. Counters are not namespaced: a tag is shared by every function using the
// store, which is the point.
type Versioner interface {
	// Versions returns the current value of each named counter, in order.
	Versions(ctx context.Context, names []string) ([]uint64, error)
	// Bump moves the named counter to a value it has never had and returns it. A
	// random non-zero 64-bit value written with a plain upsert is enough (and needs no
	// atomic increment from the engine): concurrent bumps may overwrite each other,
	// but every bump still leaves a value that differs from what any entry recorded
	// before it.
	Bump(ctx context.Context, name string) (uint64, error)
}

// NewVersion returns a random non-zero 64-bit value, for a store's Versioner.Bump to
// write with a plain upsert.
func NewVersion() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// VersionedGetter is an optional interface for stores that can read an entry and
// counters in one round trip (a pipeline or a script), so that a hit on a tagged
// entry costs nothing extra.
type VersionedGetter interface {
	// GetVersioned is Get and Versions(names) together. If the entry is missing it
	// returns ErrNotFound and no versions.
	GetVersioned(ctx context.Context, k Key, names []string) (Entry, []uint64, error)
}
