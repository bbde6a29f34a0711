package main

// overview is the text of "cachier help". doc.go carries the same text, so that
// go doc shows it; TestDocMatchesHelp keeps them in step.
const overview = `cachier runs commands through a persistent cache and manages cachier's stores.

Usage:

	cachier run [flags] [--] CMD [ARGS...]   run CMD, or replay its recorded output
	cachier ls [flags] [NAMESPACE]           list namespaces, or one's entries and leases
	cachier rm [flags] ID... | --command -- CMD  remove recorded runs
	cachier stats [flags]                    count entries, bytes and leases per namespace
	cachier clear [flags] NAMESPACE...       remove every entry of namespaces
	cachier unlock [flags] NAMESPACE...      release every calculation lease of namespaces
	cachier gc --older-than D [NAMESPACE...] delete entries older than D
	cachier invalidate --tag T | --prefix P  invalidate every entry with a tag or key prefix
	cachier help [COMMAND]                   show this help, or a command's

Every command takes --store URL (default $CACHIER_STORE, else the file store in
$XDG_CACHE_HOME/cachier or ~/.cachier): file:///dir, redis://host:6379/0,
postgres://host/db, mysql://host/db, sqlite:///path/cache.db, mongodb://host/,
memcache://host:11211 or s3://bucket/prefix (mem:// lives only as long as the
process). ls, rm, stats, clear, unlock and gc take --json for scripts. Flags may be
written -flag or --flag, before or after the arguments (in run, before CMD).

Examples:

	cachier run --stale-after 1h -- curl -s https://example.com/report.json
	cachier run --next-time --stale-after 10m --store redis://cache:6379/0 -- make report
	cachier ls
	cachier ls --stale-after 1h cachier-run
	cachier gc --older-than 720h

Exit status: run exits with the command's status (replayed or live). cachier's own
failures exit with:

	1    any other failure
	2    usage error: unknown command or flag, bad argument
	3    store error: bad store URL, store unreachable, store operation failed
	     (not for run, which runs CMD without the cache when the store is down)
	4    not supported by the store (memcached cannot list its keys) or not yet
	126  the command could not be executed
	127  the command was not found
	128+N  the command, or cachier while waiting, was killed by signal N
`
