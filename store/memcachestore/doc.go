// Package memcachestore keeps cachier entries (and so calculation leases) in memcached,
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
// An item holds the portable layer's entry record (store.AppendRecord), with no
// checksum of this package's own: the value is a sealed envelope that has one. Items
// written by earlier versions ("cmE1"/"cmE2", with their own CRC-32C) read as corrupt
// misses after an upgrade, and are replaced as their keys are computed again.
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
// round trip: it fetches the counter and the entry together. A Clear by any process is
// seen by every process on its next Get: nothing is cached for reads. Writes are made
// under the counter as the Store last read it (a miss reads it just before), and the
// write's own round trip reads it again: a record written under a counter that moved
// meanwhile is written again under the new one (it would be a miss otherwise, never a
// wrong answer).
//
// # Round trips, and Options.Addr
//
// gomemcache sends one command per round trip, and GetMulti hands each server's
// request to a goroutine (on loopback that costs about as much as a second get). With
// Options.Addr, the address of the client's one server (the URL opener sets it when
// the URL names one), the Store keeps connections of its own to it and sends each
// batch of commands in one write, in memcached's meta protocol (mg, ms, md: memcached
// 1.6 or later), reading the answers in order. Then:
//
//   - a hit is one round trip (mg of the counter and the entry);
//   - a miss is three: that Get, then GetAndCreate (store.ReadOrAcquirer: the
//     counters, the entry, add of the lease record and a read of it with its CAS), then
//     SetAndDelete (store.WriteAndReleaser: set of the entry, md of the lease record
//     by the CAS read back, the counters). A raw get and set is two. memcached cannot
//     make a write depend on another key's read within one round trip (no scripts,
//     no transactions), so the store is no store.GetOrCreator and the miss cannot
//     fold its first read into the lease: three is the floor.
//
// Without Addr the same batches run through gomemcache: a GetMulti per run of reads
// and one command per write, so a miss costs about seven round trips. So do they with
// Addr on a server older than 1.6: the first batch it answers with ERROR (an unknown
// command, so none of it ran) turns the meta commands off for the Store's life.
//
// Options.GenerationTTL trades exactness for a plain single get: the
// Store trusts the counter it last read for that long, so a Clear by another process
// may go unseen for up to GenerationTTL (its own Clears are seen at once, and an entry
// written after a foreign Clear is still found, because a record whose generation
// disagrees with the cached counter makes Get read the counter again).
//
// # Leases and version counters
//
// The driver implements store.Swapper, and store.Adapt (which cachier applies) keeps
// calculation leases and the counters of tags, prefixes and dependencies over it, as
// entry records in namespaces that start with byte 0x01; the lease rule and the record
// layout are package store's, the same on every engine. Swap is memcached add for a
// key with no entry (atomic on the server: one of any number of concurrent callers
// wins), gets and cas for a compare-and-swap (the item is replaced only if nobody
// changed it since it was read), and a cas to an item that expires at once for a
// delete. An item written before the namespace's last Clear is no entry, and is
// replaced with cas. ReleaseAll is a Clear of the lease namespace: one generation
// bump, which frees every lease in O(1) and reports 0, as memcached cannot count them.
// GetVersioned reads the entry, its namespace's generation and the counter records in
// one GetMulti (store.Batcher), so a hit on a tagged entry still costs one round trip.
// Bump is one set of a fresh random non-zero value (not incr: an evicted counter that
// incr recreated could restart from a value entries already hold).
//
// memcached can evict a counter like any other item (expiration 0 does not pin it),
// and so the generation item of the counters' namespace, which makes every counter
// read as missing; a missing counter reads as 0, as the contract says. What that means for
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
// There is no Notifier: waiters poll.
//
// # What memcached cannot do
//
// Store is a store.Clearer but not a store.Lister: Entries, Namespaces, Leases and
// DeleteBefore return errors matching errors.ErrUnsupported, because memcached cannot
// enumerate its keys. ReleaseAll works
// but returns 0, because memcached cannot count what it frees. Values larger than the
// memcached item size limit (Options.MaxItemSize, memcached -I, 1 MiB by default) less
// the record overhead are refused with an error matching store.ErrTooLarge before
// anything is sent.
//
// # Contexts
//
// gomemcache takes no context: the portable layer checks the context before every
// call, and the client's Timeout (memcache.Client.Timeout) bounds each round trip. On
// the Store's own connections (Options.Addr) a round trip ends at the context's
// deadline or after the client's Timeout, whichever is first.
//
// # URLs
//
// Importing this package registers the memcache:// scheme with store.Open:
//
//	memcache://host:port[,host:port...][?prefix=myapp&timeout=500ms&max_idle_conns=16&max_item_size=1048576]
//
// max_idle_conns is the idle connections kept per server: DefaultMaxIdleConns unless
// given (gomemcache's own default of 2 would dial anew under any concurrency).
package memcachestore
