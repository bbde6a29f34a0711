// Package named keeps named, typed, map-like caches that persist in a cachier store,
// invalidate their dependents in every process, and save themselves: the Go
// counterpart of Python's cacheman.
//
//	m, err := named.NewManager(st, &named.Options{Name: "app"})
//	users, err := named.Register[string, User](m, "users", named.DependsOn("orgs"))
//	users.Set("ann", User{...})
//	u, ok := users.Get("ann")
//	err = orgs.Invalidate(ctx) // empties orgs and users, here and in every process
//	err = m.Close(ctx)         // saves whatever has not been saved
//
// A [Manager] holds the caches of one name ("app") over one [store.Store]. Each
// [Cache] is registered once per process with [Register], under a name that is its
// identity in the store and across processes, with its key and value types and
// options: [Persistent] (the default) or memory only, [DependsOn] its parents,
// [AutoSync] rules, [WithCodec], and the hooks [Builder], [Loader], [Saver],
// [Deleter] and [Validator].
//
// # Storage
//
// A persistent cache is one store entry, namespace "cachier/named/<manager>" and ID
// the cache name, holding the whole map encoded with the cache's codec (CBOR by
// default) inside cachier's checksummed frame. A cache is loaded whole on first use
// and saved whole: that suits what cacheman is for (many small lookups, a few saves)
// and keeps every save atomic on every store. A saved map that is damaged, foreign
// (another codec) or does not decode is logged, counted in [Stats] and treated as
// missing: the cache starts empty, or from its [Builder]. Nothing read from a store
// can make this package panic or run code. [Register] refuses a persistent cache
// whose key or value type a built-in codec cannot load back as it was (an interface,
// an unexported field): give it concrete types, [Persistent](false), a [Saver] or a
// codec of your own.
//
// A [Loader] and a [Saver] replace the store I/O (to keep the map in a JSON file, for
// example); the store then keeps only a small marker recording the version counters
// the map was saved under, so an invalidation still retires it.
//
// # Dependent invalidation in O(1)
//
// Every cache has a version counter in the store ([store.Versioner]), named
// "named:<manager>:<cache>". Invalidating a cache bumps its counter, one write however
// many caches and keys depend on it, and drops the in-memory maps of the cache and of
// its dependents in this process at once.
//
// A cache remembers the values of its own counter and of all its ancestors' when its
// map was loaded or built (its basis), and saves that basis with the map. An access
// after CheckInterval (default one second) reads those counters again, one Versions
// round trip, and drops the map if any of them moved: so another process sees an
// invalidation on its first access after at most CheckInterval. A saved map whose
// basis is not current predates an invalidation and is never loaded again, even if a
// process that had not noticed the invalidation yet saved it afterwards. Nothing is
// deleted by the invalidating call; the next save overwrites the stale entry.
//
// Why check ancestors rather than bump every dependent: the invalidating process may
// not know the dependents (another program may have declared "users" depends on
// "orgs" while this one only has "orgs"), and one bump stays O(1) however large the
// graph. Every process that uses a cache must therefore declare its dependencies:
// the chain above a cache is what that process has registered and declared.
//
// DependsOn may name a cache that is registered later, or never in this process; a
// dependency that would close a cycle is an error ([ErrCycle]) at the Register that
// would close it.
//
// With a store that does not implement [store.Versioner], invalidation is local: the
// manager deletes the saved maps of the cache and of its registered dependents, and
// other processes keep their in-memory maps until they load again.
//
// # Autosync
//
// A persistent cache counts its unsaved changes and is saved when one of its [Rule]s
// holds: at least Changes changes and at least After since the last save. The
// default is cacheman's ([DefaultRules]): 10000 changes after 60 s, 10 after 300 s,
// 1 after 900 s. A background goroutine applies the rules every SyncInterval, and a
// change that makes a rule hold wakes it at once; [Manager.SaveDue] applies them on
// demand (tests drive it with a fake [cachier.Clock]). [Manager.Close] saves every
// cache with unsaved changes, so nothing is lost at a clean exit; a failed save keeps
// the changes for the next one.
//
// # Concurrency and consistency
//
// Caches are safe for concurrent use; Range and All iterate over a snapshot, so the
// loop body may use the cache. Several processes sharing a cache each keep their own
// map and save it whole: the last save wins, and a process sees another's saves when
// it loads (first use, or after an invalidation). Invalidation, not saving, is what
// every process agrees on. If the store cannot be read when a cache is first used, the
// cache starts empty (or from its Builder); [Cache.Load] loads eagerly and returns the
// error.
//
// # Hooks, removal and undeclared ancestors
//
// [BeforeSave] and [AfterLoad] transform the map on its way to and from the store or
// the Saver and Loader (cacheman's pre- and post-processors). [Cache.DeleteSaved]
// deletes the saved copy and keeps the map in memory (cacheman's
// delete_saved_cache_content). [Manager.Deregister] removes a cache, alone or with its
// registered dependents, and [Manager.DeregisterAll] every cache (cacheman's
// deregister_cache and deregister_all_caches). A saved map records the counters of
// the ancestors it was built under, and a process that loads it checks them too, and
// keeps checking them, whether or not it declared them with [DependsOn].
package named
