// Package s3store keeps cachier entries and calculation leases in an S3 bucket (AWS S3,
// MinIO, or any server with S3 conditional writes), so that processes on many machines
// share one cache without running a database.
//
// Application code should use package cachier and pass it a store made here from the
// *s3.Client it already configured:
//
//	client := s3.NewFromConfig(cfg)
//	st, err := s3store.New(client, "my-bucket", &s3store.Options{Prefix: "myapp/"})
//
// or open one from a URL with store.Open (see [OpenURL]):
//
//	s3://my-bucket/myapp?region=eu-west-1
//	s3://cache/myapp?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
//
// The bucket is created on first use if it is missing and the credentials allow it;
// otherwise the first operation fails with the server's error.
//
// # Objects
//
// Every object lives under Options.Prefix (default "cachier/"):
//
//	<prefix><namespace>/e/<id>   an entry: the portable entry record (store.AppendRecord): StoredAt, ExpiresAt and the value
//	<prefix>%01<namespace>/e/<id>  the lease of that entry, a record of the portable layer
//	<prefix>%01/e/<name>         a version counter, a record of the portable layer
//
// Leases and counters are records that package store keeps through this driver (see
// store.Adapt), in the same format as entries, in namespaces starting with byte 0x01.
//
// Namespaces and IDs are escaped reversibly: percent-escaped when that stays short and
// readable, base64url cut into path segments otherwise, so that any key the contract
// allows (500 bytes of "../..", '%' or unicode) maps to a distinct valid object name of
// at most 1024 bytes with no path segment over 255 bytes (MinIO's file-name limit).
// Listings recover the namespace and ID from the object name alone.
//
// The design keeps the hot path to one request: Get is one GetObject (StoredAt travels in
// the object's header, so there is no metadata lookup) and Set is one PutObject, which
// S3 applies atomically. An object whose header is not an entry record's is reported
// as an error matching both store.ErrNotFound and [ErrCorrupt]; a truncated or garbled
// value fails the checksum of the envelope it is, and is a miss too, never a value.
//
// Upgrading: objects written before the shared record layout (a "cS3E" header with a
// CRC-32C of its own) read as corrupt misses and are replaced when their key is
// computed again; Entries skips them and DeleteBefore removes them.
//
// Version counters (tags, prefixes, dependencies) cost one GET each to read and one PUT
// to bump; the portable layer issues an entry's GET and its counters' GETs at once,
// so a tagged hit costs one round trip of latency.
//
// # Costs of listing
//
// S3 listings carry each object's name and size but not its header or user metadata,
// and the contract needs StoredAt exactly. So Entries and DeleteBefore cost one
// ListObjectsV2 per 1000 entries plus one ranged GET of the entry's header (at most 29 bytes) per entry
// (16 in flight); Leases costs one GET per lease object. Clear and ReleaseAll cost one
// ListObjectsV2 and one DeleteObjects per 1000 objects and read nothing. Namespaces
// costs one delimited listing per 1000 namespaces.
//
// # Leases
//
// The store is a store.Swapper, and package store decides leases over it. Swap is
// S3's conditional write: a PutObject with If-None-Match: * creates a lease record, and
// one with If-Match on the ETag of the record just read replaces it, so of several
// contenders exactly one creates a lease or takes over an expired one. Deleting a
// record writes a one-byte tombstone conditional on its ETag, because MinIO ignores
// If-Match on DELETE; a tombstone reads as absent (an empty object, which only a
// truncated write leaves, as a corrupt miss). Each lease operation costs a GET and a
// conditional PUT.
//
// Expiry is decided on the clients' clocks: the lease record holds an absolute expiry
// time written by the holder and compared by contenders. Machines that share a bucket
// must keep their clocks in sync (NTP) to well within the lease TTL; a clock running
// ahead by more than the TTL lets its process take over live leases early, which costs
// a duplicated computation, never a wrong value.
//
// # Waiting
//
// S3 cannot notify anyone, so Store does not implement store.Notifier: callers waiting
// for another process's computation poll with backoff, one GET each.
//
// # Versioned buckets
//
// The store needs no versioning. In a versioned bucket every Set and lease change
// keeps an old version; use a lifecycle rule to expire noncurrent versions.
package s3store
