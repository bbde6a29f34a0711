// Package cachier memoizes Go functions persistently: wrap any
// func(context.Context, A) (R, error) and its results survive restarts, are shared
// between goroutines, processes and machines, go stale on a schedule, refresh in the
// background, and are computed once even when many callers on many machines ask at
// the same moment.
//
// It is the Go counterpart of Python's cachier, with easy_cache's invalidation and
// cacheman's named caches in mind.
//
//	report, err := cachier.Wrap(fetchReport, cachier.StaleAfter(time.Hour))
//	r, err := report.Call(ctx, ReportQuery{Year: 2026})
//
// # Where results live
//
// Results are kept in a [store.Store]. The default is a filestore in
// $XDG_CACHE_HOME/cachier (else ~/.cachier), shared by every process on the machine.
// Stores for Redis, PostgreSQL, MySQL/MariaDB, SQLite, MongoDB, memcached and S3 share
// results between machines; memstore keeps them in the process. Pass one with
// [WithStore], or open one from a URL with [store.Open].
//
// # Keys
//
// An entry's key is the function's namespace (its qualified Go name, or [Name], plus
// [Version]) and the SHA-256 of a canonical CBOR encoding of the argument. Several
// arguments go in a struct. Wrap rejects argument types that cannot be encoded
// faithfully (unexported fields, funcs, channels, interfaces), naming the field,
// because they could make two different arguments share a key. [WithKey] replaces the
// digest with your own key, such as "user:42".
//
// # The call, step by step
//
//  1. Disabled ([Disable]) or [SkipCache]: run fn, touch no store.
//  2. Read the entry for the key.
//  3. Past its expiry ([ExpireAfter], else StaleAfter, plus [MaxStale] under
//     NextTime): a miss, on every store. Every write carries the expiry
//     (store.Entry.ExpiresAt), and stores with native expiry drop the entry themselves.
//  4. Fresh (younger than min(StaleAfter, MaxAge)) and not [Overwrite]: return it.
//     The age is measured from the writer's stamp, trusted within [MaxClockSkew].
//     With [RefreshAhead], a hit near the end of the fresh period also starts one
//     background refresh.
//  5. Stale with [NextTime]: return it, and start one background refresh for the key
//     across goroutines and processes. A failed refresh is logged and counted; the
//     stale value keeps being served, and the key's next refresh waits
//     ([RefreshBackoff]).
//  6. Otherwise, one goroutine per process computes (single flight), under the
//     store's calculation lease, so one process computes and the others wait for its
//     result: woken by the store's notifications where it has them, polling with
//     backoff where it has not. A waiter computes itself when the holder's lease runs
//     out (the holder died) or after [WaitForCalcTimeout], in the holder's process as
//     in any other. [ComputeTimeout] gives fn a deadline; [CancelWhenAbandoned]
//     cancels fn when every caller waiting for it has left. A caller whose context
//     cannot end (context.Background) runs fn on its own goroutine, since it would
//     wait for the end anyway; the others who join behave as above. On the memory
//     store, a result without metadata is kept without being encoded: its bytes
//     are made when something first reads them as bytes (a [Batch], package named),
//     and until then its size in the store's bound is an estimate of its memory.
//  7. fn's errors are returned and, by default, never cached ([CacheErrors] and
//     [CacheNotFound] remember matching ones for their own TTL). A panic in fn reaches the caller
//     that ran it as a [*PanicError] carrying the stack of the panic; the lease is
//     released and waiters get the same *PanicError as an error ([ErrPanicked]).
//  8. nil results are not stored unless [AllowNil]; results over [EntrySizeLimit] are
//     returned and not stored.
//  9. A caller whose ctx ends stops waiting; the computation goes on for the others.
//  10. A failing store (down, slow, corrupt entry) never fails the call: fn's result is
//     returned and the failure is logged and counted in [Stats], unless
//     [FailOnStoreError] asks otherwise. A store that cannot be reached (a timeout, a
//     refused or dropped connection, a closed client) is then skipped for a short
//     backoff; an error that belongs to one key or one value, or a failed write, is
//     that key's miss and never turns the cache off for the others. Callers of one key
//     in one process share one run of fn whatever the store's state.
//  11. Results are shared, not copied: the callers that joined one run of fn, the hits
//     on the memory store and the hits of a [LocalTier] all get the same value (the
//     same backing array, map or pointee). Treat a result of a slice, map or pointer
//     type as read-only, or copy it before changing it: a change would be served to
//     every later caller. A result decoded from a store entry (files, servers) is the
//     caller's own.
//
// # Namespaces
//
// A function's namespace is its qualified Go name ("example.com/shop.fetchPrice"). A
// function of package main is named after its program instead of "main": its main
// package path from the build information, else the executable's name, so that two
// programs that each wrap a main.transform do not read each other's results. Wrapping
// two functions of different argument or result types under one namespace in one
// process is an error. To share results on purpose (two programs, or two wrappings of
// one function), give both the same [Name] (and [Version]) and the same types.
//
// # Closing
//
// [Func.Close] waits for a function's background refreshes, cleanups and computations
// in flight, or for its ctx, and then releases every calculation lease it still holds.
// A service closes its functions after it stops taking requests and before it closes
// their store. After Close, calls run fn directly and touch no store, and the
// management methods return [ErrClosed].
//
// # Batches
//
// [WrapBatch] memoizes a function that computes many arguments in one call,
// func(ctx, []A) (map[A]R, error), keeping one entry per argument, shared with a
// [Wrap] of the same name. [Batch.Call] answers what the typed first level or the
// local tier holds (as [Func.Call] does, with no store read), reads every other
// argument's entry in one batched store read ([store.GetMany]), computes the missing
// ones in one call of the function under per-key leases taken in key order, one
// round trip each (no store offers a batched acquisition yet; a batch never waits
// while it holds one, so batches cannot deadlock), writes them in one batched write,
// and waits for the keys other processes compute. It follows the invalidation epoch
// and moves the local tiers' marker as single calls do. [CacheMissing] remembers
// arguments the function leaves out; [RefreshCoalesce] gathers background refreshes
// into batches; [Batch.Close] is [Func.Close]. See [Batch.Call] for partial failures.
//
// # Memory-speed hits
//
// For an argument type whose Go equality matches its encoding and no WithKey, a Call
// without per-call options on the memory store is answered by a typed first level: a
// lock-free map from the argument to the decoded result, dropped exactly when the
// store's entry is (memstore kills a ticket the first level holds). [LocalTier] keeps
// decoded results in process in front of any other store, coherent across processes:
// every write and invalidation moves a small marker record in the store, and a tier
// drops its copies when a marker moves, on the store's notification (Redis pub/sub,
// PostgreSQL LISTEN/NOTIFY, fsnotify; on MariaDB and SQLite the store's watcher, which
// reads the marker at most PollInterval apart) or at a poll every half
// [LocalTierBound]; it serves no copy past the bound after its last successful poll, so
// lost notifications never leave a copy stale for longer. Hits from the local tier count in
// Stats.LocalHits as well as Stats.Hits; the hit counter is striped over cache lines,
// so hits on many cores do not contend.
//
// # Refresh and invalidation during a computation
//
// [Func.Refresh] (and [Overwrite]) answers with a computation that began after it was
// asked for: it joins no computation under way in the process, waits for whoever holds
// the calculation lease (another process, a [NextTime] background refresh) to finish,
// and then computes itself; it never takes a result stored meanwhile.
//
// [Func.Invalidate] and [Func.Clear] during a computation leave no old result: they bump
// the function's invalidation epoch before deleting. In the process, a computation does
// not store its result if an invalidation of its namespace ran since it began (a
// generation checked under a lock, with no round trip); on a store shared between
// processes it also reads the epoch before it begins and again right after its write,
// and deletes what it wrote if the epoch moved. Callers after the invalidation neither
// join nor accept a computation that began before it. The interleavings are argued in
// invalidation.go. The epoch reads ride on the miss's two store calls (the lease taken
// with the entry re-checked, then the write with the lease released); a store without
// version counters checks in the process only.
//
// # Leases, not flags
//
// Python's cachier marks an entry "being calculated" and a crash leaves the mark
// forever. Here a calculation lease has an owner and an expiry ([LeaseTTL]); the
// holder renews it while it computes, and when a holder dies its lease runs out and
// another caller takes over. [Func.ClearBeingCalculated] releases them at once, and
// the next caller in this process starts its own computation rather than joining the
// one under way.
//
// # Options
//
// One vocabulary serves [Wrap], [Func.Call] and [SetDefaults]. Options that cannot
// change per call (the store, the codec, the key function, the name) are an error in
// Call, never silently ignored. Defaults are read at call time.
//
// # Time
//
// Every time a Func reads or waits on comes from its [Clock] ([WithClock]; the real
// clock by default): entry ages, waiting and polling, lease renewal, the store
// breaker's backoff and the cleanup interval. Tests inject a [clock.Fake] and move it
// by hand instead of sleeping. Backoffs and intervals are measured as durations on
// that clock (with the real clock, Go's monotonic reading), so a wall clock that
// steps back cannot stretch them.
//
// # Values
//
// Results are encoded with CBOR by default ([JSON] and [Gob] are built in, or bring a
// [Codec]); []byte and string results are stored as they are. Every stored value is
// framed with a format version and a CRC-32C: damaged or foreign bytes are a miss,
// logged and counted in Stats.DecodeErrors, never a wrong value. Decoding fills in a
// value of the result type and nothing else: no code from the store ever runs. With
// memstore, hits return the stored value itself without decoding, so callers must not
// modify what they get back.
package cachier
