// Command cachier runs commands through a persistent cache and manages cachier's stores.
//
// Usage:
//
//	cachier run [flags] [--] CMD [ARGS...]   run CMD, or replay its recorded output
//	cachier ls [flags] [NAMESPACE]           list namespaces, or one's entries and leases
//	cachier rm [flags] ID... | --command -- CMD  remove recorded runs
//	cachier stats [flags]                    count entries, bytes and leases per namespace
//	cachier clear [flags] NAMESPACE...       remove every entry of namespaces
//	cachier unlock [flags] NAMESPACE...      release every calculation lease of namespaces
//	cachier gc --older-than D [NAMESPACE...] delete entries older than D
//	cachier invalidate --tag T | --prefix P  invalidate every entry with a tag or key prefix
//	cachier help [COMMAND]                   show this help, or a command's
//
// Every command takes --store URL (default $CACHIER_STORE, else the file store in
// $XDG_CACHE_HOME/cachier or ~/.cachier): file:///dir, redis://host:6379/0,
// postgres://host/db, mysql://host/db, sqlite:///path/cache.db, mongodb://host/,
// memcache://host:11211 or s3://bucket/prefix (mem:// lives only as long as the
// process). ls, rm, stats, clear, unlock and gc take --json for scripts. Flags may be
// written -flag or --flag, before or after the arguments (in run, before CMD).
//
// Examples:
//
//	cachier run --stale-after 1h -- curl -s https://example.com/report.json
//	cachier run --next-time --stale-after 10m --store redis://cache:6379/0 -- make report
//	cachier ls
//	cachier ls --stale-after 1h cachier-run
//	cachier gc --older-than 720h
//
// Exit status: run exits with the command's status (replayed or live). cachier's own
// failures exit with:
//
//	1    any other failure
//	2    usage error: unknown command or flag, bad argument
//	3    store error: bad store URL, store unreachable, store operation failed
//	     (not for run, which runs CMD without the cache when the store is down)
//	4    not supported by the store (memcached cannot list its keys) or not yet
//	126  the command could not be executed
//	127  the command was not found
//	128+N  the command, or cachier while waiting, was killed by signal N
//
// # cachier run
//
// The first run of a command line executes it, streaming its stdout and stderr as
// they are produced while recording them and its exit status; the next identical run
// replays them byte for byte without executing, and exits with the recorded status.
// (Replay writes all of stdout, then all of stderr: each stream is identical, their
// interleaving on a shared terminal is not kept.)
//
// It is built on package cachier: the command is a function from
// {Argv, Dir, Env} to {Stdout, Stderr, ExitCode}, wrapped with cachier.Wrap in the
// namespace "cachier-run" (--name changes it). So it inherits the calculation lease:
// identical runs started at once, in several processes or on several machines sharing
// a store, execute the command once, and the others wait and replay. The key is the
// argument list as given; --key-dir adds the working directory and --key-env NAME
// (repeatable) an environment variable. Standard input is passed on but is not part
// of the key unless --stdin is given. --key-file GLOB (repeatable, ** for any
// directories) adds the contents of files; their digests are cached by path, size and
// modification time in the user's cache directory.
//
// Flags of run: --stale-after D (recorded runs older than D execute again),
// --max-age D (the same for this run only; the smaller limit wins), --next-time
// (replay a stale run at once and refresh it in a detached background cachier),
// --wait-timeout D (stop waiting for an identical run after D and execute),
// --force (execute and record even if a fresh run is recorded), --skip (execute
// without the cache), --discard-failures (do not record non-zero exits), --verbose
// (log cachier's decisions on stderr), --warm (execute and record in the background,
// print nothing), --stdin, --key-file, --prune-after D and --max-size SIZE (run
// prunes its namespace at most once an hour: runs recorded more than 30 days ago,
// then the oldest beyond 1G; --prune-after 0 turns it off), --store and --name.
// Durations take days too (1d, 1d12h). CACHIER_STORE, CACHIER_NAME (CACHIER_SCOPE),
// CACHIER_STALE_AFTER (CACHIER_TTL), CACHIER_WAIT_TIMEOUT, CACHIER_DISCARD_FAILURES,
// CACHIER_KEY_DIR, CACHIER_PRUNE_AFTER, CACHIER_MAX_SIZE and CACHIER_VERBOSE give
// the flags their defaults.
//
// A run that was killed by a signal, or whose command could not start, is never
// recorded. If the store cannot be reached before the command runs, run executes it
// without the cache, prints one warning on stderr and exits with its status; if only
// recording fails, the command's output and status stand and a warning is printed. On SIGTERM or SIGHUP, cachier passes the signal to
// the running command; SIGINT from a terminal reaches the command directly. While
// waiting for an identical run, any of them makes cachier exit with 128+N.
//
// The background refresh of --next-time is "cachier run" with the same flags without
// --next-time, started in its own session with its output discarded: it executes the
// command only if the run is still stale, under the calculation lease, so concurrent
// stale replays refresh it once. It receives the store URL through $CACHIER_STORE,
// never on its command line, where other users could read a password.
//
// # Managing stores
//
// ls lists the namespaces of a store with their entry counts and sizes, or, given a
// namespace, its entries (ID, size, age, and fresh or stale with --stale-after) and
// the calculation leases in progress (owner host and PID, time to expiry). stats adds
// leases, the ages of the oldest and newest entries and totals. clear removes every
// entry of namespaces, unlock releases their leases (cachier's
// clear_being_calculated), and gc --older-than D deletes old entries, reporting
// progress on stderr when there are many namespaces. Stores that cannot list their
// keys (memcached) say so and exit with status 4. Tables are aligned for people; with
// --json the output is a JSON document whose field names are stable. ls of a
// namespace of recorded runs shows each one's command line and working directory,
// and rm removes recorded runs by ID prefix or by command line. clear of a namespace
// that is not in the store says nothing matched and exits with status 1.
//
// # JSON output
//
// With --json, each command prints one JSON document; times are RFC 3339 in UTC:
//
//	ls, stats   {"namespaces": [{"namespace", "entries", "bytes", "leases", "oldest", "newest"}]}
//	            (stats adds the totals "entries", "bytes" and "leases")
//	ls NS       {"namespace", "entries": [{"id", "size", "stored_at", "age_seconds", "stale",
//	             "command", "dir"}],
//	             "leases": [{"id", "host", "pid", "expires_at", "expires_in_seconds"}]}
//	            ("stale" only with --stale-after; a lease's token is never shown)
//	clear       {"cleared": [namespace...], "missing": [namespace...]}
//	rm          {"removed": [{"id", "command", "dir"}]}
//	unlock      {"released": [{"namespace", "count"}]}
//	gc          {"deleted", "namespaces": [{"namespace", "count"}]}
//
// Passwords in store URLs never appear in cachier's messages.
package main
