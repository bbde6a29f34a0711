// Package redisstore is a cachier store on Redis (or Valkey), through a go-redis v9
// client: a single node, Sentinel (a failover client), Cluster or Ring.
//
// It is for services that already run Redis and want memoized results shared by
// every process and machine that talks to it. Application code should use package
// cachier and pass it a store made here:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
//	st, err := redisstore.New(rdb, nil) // the client stays yours: TLS, auth, pools
//	report, err := cachier.Wrap(fetchReport, cachier.WithStore(st))
//
// Set ContextTimeoutEnabled on a client you pass in: without it go-redis ignores
// context deadlines on socket reads, and a server that stops answering can hold a
// call well past cachier's StoreTimeout (the torture tests measured 15 s in a black
// hole with a 300 ms StoreTimeout). Clients made from a URL have it set.
//
// or open one from a URL with store.Open (the store then owns its client):
//
//	redis://[user:pass@]host:port/db?prefix=cachier
//	rediss://...                                         (TLS)
//	redis+cluster://host:port,host:port                  (or ?addr=host:port&addr=...)
//	redis+sentinel://host:port,host:port/db?master=name  (rediss+ for TLS)
//
// # Drivers and capabilities
//
// New returns a store.Driver; cachier (store.Adapt) validates keys and contexts,
// decides calculation leases and keeps version counters over it, as for every
// store. What the driver does in Redis:
//
//   - store.Swapper: Swap is one script that compares the value of a record with the
//     expected bytes (or checks there is none) and writes, or deletes, it. The
//     portable layer's lease rule runs over it, so leases hold across processes and
//     machines; lease records carry their expiry inside, by the clock of the process
//     that took them, and a record left by a dead holder is taken over by a
//     compare-and-swap.
//   - store.ReadOrAcquirer and store.WriteAndReleaser, on one primary only (a
//     *Store: a single server, or Sentinel's failover client): GetAndCreate and
//     SetAndDelete are one script each, so a miss through store.MissPath costs two
//     round trips (read the entry and its counters and take the lease; store the
//     result, give up the lease and read the counters again). On a Cluster or a Ring (a *ShardedStore) the
//     counters live on other slots than the entry, and a script may touch one slot
//     only, so the portable layer replaces them with a batched read and Swap.
//   - store.Batcher: one MGET on one primary; on a Cluster or Ring a pipeline of GETs
//     (or SETs), which go-redis splits by slot and sends to every node at once. Version
//     counters are records read this way, with the entry when a hit checks them, so a
//     hit on a tagged entry is one round trip.
//   - store.Lister, store.Notifier and store.Expirer, below.
//
// # Keys
//
// Every record of one key shares a hash tag made of the escaped namespace and ID:
//
//	<prefix>:{<namespace>:<id>}:v   the entry: a 10-byte header (format, stored-at) and the value
//	<prefix>:{<namespace>:<id>}:l   the portable layer's calculation lease of the key, as a record
//	<prefix>:{<namespace>:<id>}:c   the pub/sub channel that wakes the watchers of both
//
// and, apart from them, the portable layer's version counters (tags, prefixes and
// dependencies), each with its own hash tag:
//
//	<prefix>:{%01:<name>}:v         a counter: a record of 8 bytes, rewritten by each Bump
//
// The portable layer names its lease records with a namespace that starts with byte
// 0x01 (store.InternalPrefix); the driver stores them with kind 'l' under the
// entry's own hash tag, so an entry, its lease and its channel are on one slot and a
// watched key costs one subscription. The SCAN pattern of a user namespace matches
// its entries (kind 'v') only, and no user namespace escapes to %01: Clear,
// DeleteBefore and Entries of a namespace never touch its leases or any counter, and
// Namespaces reports a lease's namespace as its user namespace and no counter's.
//
// Namespace, ID and counter name are escaped (%XX for every ASCII byte outside
// [A-Za-z0-9] and -._/~!$&'()+,;=@; UTF-8 beyond ASCII is kept), so a user's ':',
// '{', '}', '*' or '%' can neither move the hash slot, nor collide with another key,
// a counter or an internal record, nor act as a glob in SCAN MATCH; the escaping is
// reversible, so listings recover the exact IDs, and keys stay readable in redis-cli.
//
// The hash tag is per key, not per namespace. A namespace is one memoized function,
// and the hottest function of a service would otherwise live on one slot of one
// master, however many masters the cluster has; per-key tags spread its entries over
// every master, like any other Redis cache. Per-key tags still put an entry, its
// lease and its channel on one slot, so every single-key script (Set and Swap with
// their wake-ups) is a single-slot operation. The price is paid by the
// namespace-wide operations, which cachier uses rarely and from tools: Clear,
// DeleteBefore, Entries, Leases, ReleaseAll and Namespaces SCAN every master
// (ClusterClient.ForEachMaster) with a MATCH pattern, in time proportional to the
// database, and act on each key with single-key scripts pipelined per SCAN batch.
// There is no index to keep in step with Redis eviction or expiry. A SCAN during
// resharding may miss keys being moved.
//
// Records of earlier releases (owner-only lease records, decimal counters under
// <prefix>:version:{<name>}) are not read: an old lease record counts as no lease,
// and old counters read as never bumped.
//
// # Costs
//
// A hit is one GET; a hit on a tagged entry one MGET. A miss through the portable
// layer's store.MissPath (ReadOrAcquire, then WriteAndRelease) is two EVALSHAs on one
// primary (GetAndCreate, SetAndDelete). On a Cluster or Ring it is the portable
// layer's fallback: a pipelined read of the entry, its lease record and its counters
// and a Swap to take the lease, then a Set, a GET and a Swap to give it up, and a
// pipelined read of the counters (six round trips; five without counters). Set is one EVALSHA (SET and
// PUBLISH); Bump one EVALSHA too. Acquire, Renew and Release, called alone, are a GET
// and an EVALSHA (Swap) each; when another owner holds the lease, Acquire costs the
// GET alone.
//
// A batch (cachier's WrapBatch) takes its leases with SwapMany and writes its results
// with SetAndDeleteManySwap: on one primary each is one script for the whole batch
// (one EVALSHA per 512 keys, in one pipeline), which applies the single-key script's
// Lua to each key in turn; on a Cluster or Ring SwapMany is a pipeline of Swap's
// script, split by slot, and the writes go through the portable layer's fallback.
//
// # Notifications
//
// The driver implements store.Notifier with Redis pub/sub: one subscription
// connection per Store, shared by every watched key (subscribed once per channel,
// with reference counts), reconnected by go-redis. Watch returns only after a PING
// sent after the SUBSCRIBE has come back, so the subscription is in place. Every
// script that changes a record publishes on its channel, except the one that takes a
// free lease on a miss (GetAndCreate): nobody waits for a lease to be taken, and its
// release publishes. The wake-up says only "this key changed". Lease expiry is not published: the portable layer's waiters know the
// holder's expiry and wake themselves. Wake-ups lost while the connection was down
// are made up by waking every watcher once it is back.
//
// It uses classic PUBLISH, not Redis 7's sharded SPUBLISH: go-redis binds a sharded
// subscription to the node of its first channel, so one connection could not watch
// keys on several masters; a connection per master, resubscribed on every slot
// migration, is not worth it for one small message per Set. On a cluster, classic
// messages travel the cluster bus to every node.
//
// # Errors
//
// A miss is store.ErrNotFound; a record that cannot be parsed is an error matching
// both store.ErrNotFound and ErrCorrupt. Every other error is go-redis's own, so
// errors.As reaches its types, and a store keeps working when the server comes back:
// go-redis reconnects.
package redisstore
