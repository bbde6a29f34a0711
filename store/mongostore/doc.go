// Package mongostore keeps cachier entries and calculation leases in MongoDB (or a
// server speaking its wire protocol, such as FerretDB), through the official driver,
// go.mongodb.org/mongo-driver/v2. It is the counterpart of Python cachier's mongetter.
//
// Application code should use package cachier and hand it a store made here from the
// collection it already has:
//
//	client, err := mongo.Connect(options.Client().ApplyURI(uri))
//	s, err := mongostore.New(client.Database("app").Collection("cachier"), nil)
//
// The client, its pool, TLS and credentials stay the caller's; Close does not
// disconnect it. A store opened from a URL owns the client it made and disconnects it.
//
// # Documents
//
// One document per entry, in the collection given to New:
//
//	{_id: "<len(ns)>:<ns>:<id>", ns, id, stored_at: int64 Unix nanoseconds, size, value: binary}
//
// The _id is the namespace and ID, length-prefixed so that no two keys share one
// (namespace "a:b", ID "c" and namespace "a", ID "b:c" differ) and readable in a shell.
// Get is one FindOne by _id; Set is one ReplaceOne with upsert. stored_at is kept in
// nanoseconds, exactly as given. A document that lacks a field, holds the wrong type, or
// names another key is a miss matching store.ErrNotFound and store.ErrCorrupt, never a
// wrong value.
//
// An index on {ns, stored_at} (Clear, DeleteBefore, Entries, Namespaces) and one on the
// lease collection's {ns, expires_at} are created on the first write, idempotently:
// many processes creating the same index at once is not an error. Get never waits for
// them.
//
// # Leases
//
// Leases live in a sibling collection, the entry collection's name plus "_leases"
// (Options.LeaseCollection overrides it), one document per key with the owner's host,
// pid, token and expires_at (int64 Unix nanoseconds). Acquire is an InsertOne: the
// unique _id makes exactly one of any number of concurrent callers win a free key.
// When the key is taken, Acquire reads the holder; if its lease has expired, the caller
// first inserts a takeover claim whose _id is derived from the exact version of the
// lease document it found, and only the one caller whose insert succeeds replaces that
// version, with a ReplaceOne filtered on its _id, token and expires_at, and then
// deletes the claim. The claim is needed because FerretDB v1 (the test server, with its
// SQLite backend) evaluates an update's filter and writes the result as two steps: with
// a filtered update alone, every one of eight callers racing for one expired lease
// "won" it there. A unique insert is atomic on every server. A taker that dies between
// claiming and replacing delays the takeover by at most 30 seconds (the next claim in
// the chain is taken then). Renew is an UpdateOne filtered on the token and an
// unexpired expires_at; Release a DeleteOne filtered on the token; ReleaseAll a
// DeleteMany (it also sweeps claims left behind). On FerretDB v1 a Renew or Release by
// the old holder that races with a takeover at the very instant of expiry can still
// interleave; renew well before expiry, as cachier does.
//
// Expiry is judged by the clock of the calling process (Options.Clock), not the
// server's: FerretDB has no $$NOW in update filters, and a client clock keeps the rule
// the same on every server. Hosts sharing a store are assumed to keep their clocks
// within a small fraction of a lease's TTL of each other; a host whose clock runs
// ahead takes over leases early.
//
// # Version counters
//
// The counters of store.Versioner (tags, prefixes and dependencies) live in a third
// collection, the entry collection's name plus "_versions" (Options.VersionCollection
// overrides it), one document per counter:
//
//	{_id: "<name>", v: int64}
//
// the name as given (a string _id holds any UTF-8, so nothing is escaped) and the
// uint64 value bit for bit. No namespace operation touches the collection, so
// counters survive Clear, DeleteBefore and ReleaseAll, and Namespaces never lists
// them. Versions is one Find with $in. Bump is one ReplaceOne with upsert of a fresh
// random value, which needs no atomic read-modify-write: on FerretDB v1, which runs an
// update's filter and its write as two steps, an increment could lose a bump, while
// concurrent random writes may overwrite each other but each leaves a value that no
// entry has recorded. An upsert that loses the race to create a counter is retried.
//
// Nothing relies on TTL indexes, transactions or change streams, which FerretDB's
// SQLite backend lacks: expired leases are judged by their expires_at and taken over or
// removed by ReleaseAll, and there is no Notifier (waiters poll).
//
// # URLs
//
// Importing this package registers the mongodb:// and mongodb+srv:// schemes with
// store.Open. The path names the database; collection (default "cachier"),
// lease_collection and version_collection name the collections; every other parameter
// must be a MongoDB connection string option:
//
//	mongodb://user:pass@host:27017/app?collection=cachier&authSource=admin
package mongostore
