// Package redisstore is a cachier store on Redis (or Valkey), through a go-redis v9
// client: a single node, Sentinel (a failover client), Cluster or Ring.
//
// It is for services that already run Redis and want memoized results shared by
// every process and machine that talks to it. Application code should use package
// cachier and pass it a store made here:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
//	s, err := redisstore.New(rdb, nil) // the client stays yours: TLS, auth, pools
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
// # Keys
//
// Every record of one key shares a hash tag made of the escaped namespace and ID:
//
//	<prefix>:{<namespace>:<id>}:v   the entry: a 10-byte header (format, stored-at) and the value
//	<prefix>:{<namespace>:<id>}:l   the calculation lease: the owner, with Redis's own PX expiry
//	<prefix>:{<namespace>:<id>}:c   the pub/sub channel that wakes the key's watchers
//
// and, apart from them, the version counters of store.Versioner (tags, prefixes and
// dependencies), each with its own hash tag:
//
//	<prefix>:version:{<name>}       a counter: its value in decimal
//
// A counter's name never starts with "<prefix>:{", so no SCAN of Clear, DeleteBefore,
// Entries, Leases, ReleaseAll or Namespaces ever sees one: counters survive every
// namespace operation and are never listed. Bump writes a fresh random value with a
// plain SET.
//
// Namespace, ID and counter name are escaped (%XX for every ASCII byte outside
// [A-Za-z0-9] and -._/~!$&'()+,;=@; UTF-8 beyond ASCII is kept), so a user's ':',
// '{', '}', '*' or '%' can neither move the hash slot, nor collide with another key,
// a counter or an internal record, nor act as a glob in SCAN MATCH; the escaping is reversible, so listings
// recover the exact IDs, and keys stay readable in redis-cli.
//
// The hash tag is per key, not per namespace. A namespace is one memoized function,
// and the hottest function of a service would otherwise live on one slot of one
// master, however many masters the cluster has; per-key tags spread its entries over
// every master, like any other Redis cache. Per-key tags still put an entry, its
// lease and its channel on one slot, so each script (Set with its wake-up, Acquire,
// Renew, Release) is a single-slot operation. The price is paid by the namespace-wide
// operations, which cachier uses rarely and from tools: Clear, DeleteBefore, Entries,
// Leases, ReleaseAll and Namespaces SCAN every master (ClusterClient.ForEachMaster)
// with a MATCH pattern, in time proportional to the database, and act on each key
// with single-key scripts pipelined per SCAN batch. There is no index to keep in step
// with Redis eviction or expiry. A SCAN during resharding may miss keys being moved.
//
// # Costs
//
// A hit is one GET. A miss is one GET. Set is one EVALSHA (SET and PUBLISH). Acquire
// is one EVALSHA (SET NX PX and PUBLISH); when the lease is held, the same script
// returns the holder and its remaining time, so contention costs no extra round trip.
// Renew and Release compare the stored owner record in a script. Versions, and
// GetVersioned (a hit on an entry together with its counters), are one round trip:
// one MGET on a single server, a pipeline of GETs on a Cluster or Ring (MGET cannot
// span slots).
//
// # Notifications
//
// The store implements store.Notifier with Redis pub/sub: one subscription
// connection per Store, shared by every watched key (subscribed once per key, with
// reference counts), reconnected by go-redis. Watch returns only after a PING sent
// after the SUBSCRIBE has come back, so the subscription is in place. Redis does not
// publish key expiry without server configuration, so the store learns each watched
// lease's remaining time (a PTTL when a key is first watched, and from every Acquire
// and Renew message) and wakes its watchers when it runs out. Wake-ups lost while the
// connection was down are made up by waking every watcher once it is back.
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
