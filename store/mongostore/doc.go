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
// An index on {ns, stored_at} (Clear, DeleteBefore, Entries, Namespaces) is created on
// the first write, idempotently: many processes creating the same index at once is not
// an error. Get never waits for it. Concurrent first Sets of one key may race to insert
// it; the loser's upsert is retried and replaces the winner's document.
//
// # Leases and version counters
//
// The driver implements store.Swapper, and store.Adapt (which cachier applies) keeps
// calculation leases and version counters over it, as records in the same collection
// under namespaces that start with byte 0x01; the lease rule and the record layout are
// package store's, the same on every engine. There is no lease or counter collection.
//
// Swap's create-if-absent is an InsertOne: the unique _id makes exactly one of any
// number of concurrent callers win a free key. A compare-and-swap first inserts a claim
// document whose _id is derived from the key and the exact old value, so that of all
// the callers swapping from that value only the one whose insert succeeds goes on, with
// a ReplaceOne (or DeleteOne) filtered on the _id and the old value, and then deletes
// its claim. The claim is needed because FerretDB v1 (the test server) evaluates an
// update's filter and writes the result as two steps: with a filtered update alone,
// every one of sixteen callers racing to take over one expired lease "won" it there. A
// unique insert is atomic on every server. Claims have no ns, so no listing shows
// them. A swapper that dies between claiming and swapping delays other swaps from that
// value by at most 30 seconds, judged by Options.Clock (the next claim in the chain is
// taken then).
//
// # A miss
//
// The driver is a store.ReadOrAcquirer and a store.WriteAndReleaser, so a cachier miss
// is six commands (eight without them): the first find; an insert of the lease record
// and one find of the entry, the counters and, if the insert found one, the record;
// one update that upserts the entry and inserts Swap's claim on the lease's value,
// one delete of the record (filtered on that value) and of the claim, and a find of
// the counters after the write. No MongoDB command writes one document and reads
// others, so without transactions each step is two. On FerretDB v1 (known by
// buildInfo's ferretdbVersion, read once with the indexes) a find by $in and a filter
// on more than _id scan the collection (only a filter on _id alone is pushed down to
// SQLite), so there the miss path reads each document by _id, the several of one step
// at once, and reads the lease record before deleting it by _id (the claim keeps
// every Swap from its value out in between; FerretDB's own filtered delete is that
// read and delete anyway): eight commands in seven rounds, none of which scans.
// Swap's filtered replace and delete (takeovers, renewals) still scan there.
//
// Nothing relies on transactions or change streams, which FerretDB lacks, and there is
// no Notifier: waiters in other processes poll.
//
// # URLs
//
// Importing this package registers the mongodb:// and mongodb+srv:// schemes with
// store.Open. The path names the database and collection (default "cachier") the
// collection; every other parameter must be a MongoDB connection string option:
//
//	mongodb://user:pass@host:27017/app?collection=cachier&authSource=admin
package mongostore
