// Package storetest is the conformance suite and benchmark set that every cachier store
// runs unchanged, modelled on gocloud.dev's blob/drivertest.
//
// A store package needs only a few lines:
//
//	type harness struct{}
//
//	func (harness) MakeStore(ctx context.Context, t *testing.T) (store.Driver, error) {
//		return memstore.New(nil), nil
//	}
//	func (harness) Close() {}
//
//	func TestConformance(t *testing.T) {
//		storetest.RunConformanceTests(t, func(*testing.T) storetest.Harness { return harness{} },
//			storetest.Capabilities{})
//	}
//
//	func BenchmarkStore(b *testing.B) { storetest.RunBenchmarks(b, memstore.New(nil)) }
//
// The suite checks only what a caller can observe: errors matched with errors.Is and
// errors.As, exact bytes, and eventual states. Every test works in fresh random
// namespaces (see [Namespace]), so many suites may share one server, and removes what it
// wrote (Clear and ReleaseAll) when it ends. No test asserts on wall-clock time: where
// real time must pass (lease expiry), a test polls for the eventual state with a
// generous deadline.
//
// # Required and optional parts
//
// The required tests (reads, writes, deletes, odd and long keys, cancelled contexts,
// and leases and counters as the portable layer gives them) run for every driver.
// The tests of a capability run when the driver declares it: [store.Lister] (listing,
// Clear, DeleteBefore; a driver without it must answer those with
// errors.ErrUnsupported, which is tested instead), [store.Notifier] (wake-ups) and
// [store.LiveStore] (decoded values kept beside the bytes), [store.ReadOrAcquirer]
// and [store.WriteAndReleaser] (GetAndCreate and SetAndDelete as the driver answers
// them; the store.MissPath calls built on them run for every driver, over the
// fallbacks when it has neither). Leases over a
// [store.Swapper] run the same tests as leases kept in process, plus the concurrent
// takeover that only an atomic primitive passes.
//
// The suite adapts each driver with a [clock.Fake], so lease expiry is tested by
// moving the clock, not by waiting.
//
// # Cancelled contexts
//
// Every method called with a context that is already cancelled must return promptly
// with an error (ideally one matching context.Canceled), even for stores, such as the
// in-process one, that never wait: callers rely on a cancelled context stopping work,
// and a store that sometimes answers and sometimes does not would be harder to reason
// about. Entries and Leases report it as the first error they yield.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cachier-go/cachier/clock"
	"github.com/cachier-go/cachier/store"
)

var _ = clock.Real // referenced in the docs

// Harness makes stores for the conformance suite. RunConformanceTests calls the
// constructor once per test and Close when that test ends.
type Harness interface {
	// MakeStore returns a store for one test. Tests use random namespaces, so a shared
	// server is fine. The suite closes the store when the test ends.
	// It may be a bare [store.Driver]: the suite uses it through [store.Adapt].
	MakeStore(ctx context.Context, t *testing.T) (store.Driver, error)
	// Close releases what the harness holds (not the stores it made).
	Close()
}

// Capabilities describes what a store cannot do, so that the suite expects the
// documented failure instead of the full behaviour. The zero value is a store that
// can do everything.
type Capabilities struct {
	// NoListing means Entries, Namespaces, Leases and DeleteBefore return an error
	// matching errors.ErrUnsupported (memcached cannot enumerate its keys).
	NoListing bool
	// MaxValueSize is the largest value the store is guaranteed to hold. Zero means
	// values of at least 4 MiB must round-trip; otherwise a larger value may instead
	// be refused with an error matching store.ErrTooLarge.
	MaxValueSize int
}

// NamespaceLen is the most bytes Namespace returns, which leaves room for a test to
// append to it and stay within store.MaxNamespaceLen.
const NamespaceLen = 150

// Drain empties ch without waiting, so that the next wait on it sees only wake-ups
// that come after.
func Drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// Namespace returns a namespace unique to this test and run:
// "storetest/<test name>/<random>", with the test name cut so that the whole is at
// most NamespaceLen bytes. Tests that need several namespaces call it several times.
func Namespace(tb testing.TB) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	suffix := "/" + hex.EncodeToString(b[:])
	name := tb.Name()
	const prefix = "storetest/"
	if room := NamespaceLen - len(prefix) - len(suffix); len(name) > room {
		name = name[:room]
		for !utf8.ValidString(name) { // do not cut a rune in half
			name = name[:len(name)-1]
		}
	}
	// NUL would make the namespace invalid; test names never hold one, but be safe.
	name = strings.ReplaceAll(name, "\x00", "_")
	return prefix + name + suffix
}
