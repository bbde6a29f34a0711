// Package memcachestore keeps cachier entries and calculation leases in memcached,
// through github.com/bradfitz/gomemcache.
//
// Application code should use package cachier and hand it a store made here:
//
//	mc := memcache.New("10.0.0.1:11211", "10.0.0.2:11211")
//	s, err := memcachestore.New(mc, &memcachestore.Options{Prefix: "myapp"})
//
// It is for services that already run memcached and want results shared between
// processes and machines without another database. memcached is a cache: it may evict
// any item at any time, so an entry can disappear before it goes stale (cachier then
// simply recomputes), and it cannot list its keys.
//
// # Keys
//
// memcached keys are at most 250 bytes of printable ASCII without spaces, while a
// cachier key is up to 700 bytes of arbitrary UTF-8. Every item key is therefore
//
//	<prefix>:<kind>:<base64url(sha256(namespace NUL id))>
//
// and the item itself records the full namespace and ID. A record whose namespace or ID
// differs (a hash collision, or bytes some other program wrote under the prefix) is a
// miss, never somebody else's value.
//
// # Namespaces use version counters
//
// Clear must cost O(1) however many entries a namespace has, and memcached cannot find
// them anyway. Each namespace has a generation counter (an item holding a decimal
// number, bumped with incr). Every entry records the generation it was written under;
// an entry from an older generation is a miss, and memcached's LRU reclaims it. A
// missing counter is created with a random 63-bit value (add, so concurrent creators
// agree), so a counter that memcached evicted comes back as a value no old entry holds.
//
// The generation lives inside the record, not in the item key, so that Get costs one
// round trip: it fetches the counter and the entry with a single GetMulti (the two keys
// go to their servers in parallel when they live on different ones). A Clear by any
// process is seen by every process on its next Get: nothing is cached in the Store.
// Set reads the counter and then writes, two round trips; a Set racing with a Clear is
// ordered before it.
//
// GetMulti hands each server's request to a goroutine, so on loopback a Get costs about
// two plain gets (see BenchmarkGet); across a network, where the round trip dominates,
// it costs one. Options.GenerationTTL trades exactness for a plain single get: the
// Store trusts the counter it last read for that long, so a Clear by another process
// may go unseen for up to GenerationTTL (its own Clears are seen at once, and an entry
// written after a foreign Clear is still found, because a record whose generation
// disagrees with the cached counter makes Get read the counter again).
//
// # Tags, prefixes and dependencies: store.Versioner
//
// The counters of store.Versioner are items of their own, kind 'v':
//
//	<prefix>:v:<base64url(sha256(name))>   "cmV1" value:u64 nameLen:u16 crc:u32 name
//
// The record names its counter, so a foreign or colliding record is an error matching
// ErrCorrupt, never a value. Counters are not namespaced, so no Clear or ReleaseAll
// touches them. Versions is one GetMulti, and so is GetVersioned (store.VersionedGetter:
// the namespace's generation, the entry and its counters together), so a hit on a
// tagged entry costs one round trip. Bump is one set of a fresh random non-zero value
// (not incr: an evicted counter that incr recreated could restart from a value entries
// already hold).
//
// memcached can evict a counter like any other item (expiration 0 does not pin it),
// and a missing counter reads as 0, as the contract says. What that means for
// invalidation:
//
//   - An entry stored after its tag was bumped recorded the bump's random non-zero
//     value. If the counter is later evicted it reads as 0, which differs: the entry
//     is a miss and is recomputed, never wrongly served.
//   - An entry stored while its tag had never been bumped (or had been evicted)
//     recorded 0. A bump retires it; but if that bumped counter is then evicted while
//     the entry survives, the counter reads as 0 again and the retired entry is served
//     again until it goes stale or is itself evicted. This is the one window in which
//     an invalidation can be lost.
//
// Counters are small and, when tagged entries are read, read on every hit, so LRU
// keeps them longer than the entries that depend on them; but memcached keeps one LRU
// per slab class, so memory pressure on small items can evict counters while larger
// entries stay. Where a lost invalidation is unacceptable, give memcached enough
// memory that it does not evict (watch its evictions statistic), run it with -M (fail
// writes instead of evicting), bound how long a revived entry can be served with
// cachier.StaleAfter, or keep tagged functions in a store that does not evict.
//
// # Leases
//
// Acquire is memcached add (atomic on the server) of a lease record with the owner and
// the precise expiry in nanoseconds. memcached item expirations have a granularity of
// one second, so the item's own expiration is rounded up and the record's expiry is
// authoritative: a lease that has expired but is not yet evicted is taken over with
// a compare-and-swap on the item's CAS id, so two callers can never both take it over.
// Renew and Release read the record, check the owner's token, and write with
// compare-and-swap; Release leaves a tombstone that expires at once. ReleaseAll bumps a
// lease generation counter of the namespace, which frees every lease granted under the
// old one. Expiry is judged by the clock of the process (Options.Clock): hosts sharing
// a store are assumed to keep their clocks within a small fraction of a lease's TTL.
// Lease items live at most 30 days (memcached's limit for relative expirations).
//
// There is no Notifier: waiters poll.
//
// # What memcached cannot do
//
// Entries, Namespaces, Leases and DeleteBefore return errors matching
// errors.ErrUnsupported, because memcached cannot enumerate its keys. ReleaseAll works
// but returns 0, because memcached cannot count what it frees. Values larger than the
// memcached item size limit (Options.MaxItemSize, memcached -I, 1 MiB by default) less
// the record overhead are refused with an error matching store.ErrTooLarge before
// anything is sent.
//
// # Contexts
//
// gomemcache takes no context: each method checks its context before every round trip,
// and the client's Timeout (memcache.Client.Timeout) bounds each round trip.
//
// # URLs
//
// Importing this package registers the memcache:// scheme with store.Open:
//
//	memcache://host:port[,host:port...][?prefix=myapp&timeout=500ms&max_idle_conns=16&max_item_size=1048576]
package memcachestore
