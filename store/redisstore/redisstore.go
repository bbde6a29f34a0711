package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
)

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "cachier"

// maxValueSize is what fits in a Redis string (512 MiB, proto-max-bulk-len's
// default) after the record header.
const maxValueSize = 512<<20 - headerLen

// scanCount is the COUNT hint of SCAN and the size of the pipelines that follow it.
const scanCount = 1000

// Options configure a Store. The zero value (and nil) is valid.
type Options struct {
	// Prefix starts every key the store writes; stores with different prefixes on one
	// server never see each other's records. It must be printable ASCII without
	// spaces or braces. Default: DefaultPrefix.
	Prefix string
	// Logger receives notifier reconnections and other events that no call returns.
	// Default: slog.Default().
	Logger *slog.Logger
	// MaxValueSize is the largest value Set accepts; larger values get an error
	// matching store.ErrTooLarge. Default and maximum: 512 MiB less the record header.
	MaxValueSize int
}

// driver is the store.Driver on a go-redis client that every client gets: records,
// Swap, listing, batches, notifications and native expiry. Store adds the multi-key
// scripts where one primary holds every key.
type driver struct {
	client   redis.UniversalClient
	owned    bool // opened from a URL: Close closes client
	keys     keyer
	log      *slog.Logger
	maxValue int

	hubMu  sync.Mutex
	hub    *hub // started by the first Watch
	closed bool
}

// Store is the driver on one primary: a *redis.Client for a single server, or the
// failover client of Sentinel. Besides the capabilities of every redisstore driver
// (store.Swapper, store.Lister, store.Batcher, store.Notifier, store.Expirer) it is
// a store.ReadOrAcquirer and a store.WriteAndReleaser: each is one script, so a miss
// costs two round trips. Use it through store.Adapt (cachier does so itself).
type Store struct{ *driver }

// ShardedStore is the driver on a Redis Cluster or a Ring. The records of one key
// share a slot, but an entry and the counters it depends on do not, and a script
// may touch only one slot; so it has every capability of Store except the two
// multi-key scripts, which the portable layer replaces with a batched read and Swap.
type ShardedStore struct{ *driver }

var (
	_ store.Swapper          = (*driver)(nil)
	_ store.Lister           = (*driver)(nil)
	_ store.Notifier         = (*driver)(nil)
	_ store.Batcher          = (*driver)(nil)
	_ store.ReadOrAcquirer   = (*Store)(nil)
	_ store.WriteAndReleaser = (*Store)(nil)
)

// New returns a driver that keeps its records in the server client talks to: a
// *Store for a *redis.Client (single node or Sentinel failover), a *ShardedStore for
// a *redis.ClusterClient or a *redis.Ring. The client stays the caller's: Close does
// not close it.
func New(client redis.UniversalClient, opts *Options) (store.Driver, error) {
	d, err := newDriver(client, opts)
	if err != nil {
		return nil, err
	}
	if _, single := client.(*redis.Client); single {
		return &Store{d}, nil
	}
	return &ShardedStore{d}, nil
}

func newDriver(client redis.UniversalClient, opts *Options) (*driver, error) {
	if client == nil {
		return nil, errors.New("redisstore: nil client")
	}
	o := store.OptionsOf(opts)
	kr, err := newKeyer(cmp.Or(o.Prefix, DefaultPrefix))
	if err != nil {
		return nil, err
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	switch {
	case o.MaxValueSize < 0:
		return nil, fmt.Errorf("redisstore: negative MaxValueSize %d", o.MaxValueSize)
	case o.MaxValueSize == 0 || o.MaxValueSize > maxValueSize:
		o.MaxValueSize = maxValueSize
	}
	return &driver{client: client, keys: kr, log: o.Logger, maxValue: o.MaxValueSize}, nil
}

// Client returns the client the store uses.
func (s *driver) Client() redis.UniversalClient { return s.client }

// Get returns the entry for k with one GET. A record that cannot be parsed is an
// error matching both store.ErrNotFound and ErrCorrupt.
func (s *driver) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	b, err := s.client.Get(ctx, s.keys.name(k)).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.Entry{}, &notFoundError{k}
	} else if err != nil {
		return store.Entry{}, err
	}
	return decodeEntry(k, b)
}

// decodeEntry parses k's record b; the entry's Value aliases b.
func decodeEntry(k store.Key, b []byte) (store.Entry, error) {
	e, err := decodeRecord(b)
	if err != nil {
		return store.Entry{}, fmt.Errorf("redisstore: entry %s: %w (%w)", k, err, store.ErrNotFound)
	}
	return e, nil
}

// notFoundError is a miss that names its key; the message is built only if asked for.
type notFoundError struct{ k store.Key }

func (e *notFoundError) Error() string {
	return "redisstore: " + e.k.String() + ": " + store.ErrNotFound.Error()
}
func (e *notFoundError) Unwrap() error { return store.ErrNotFound }

// record encodes e for k, refusing values over the size limit, and returns its PXAT
// argument: the expiry in Unix milliseconds, or empty for none (SET then also takes
// any old expiry off).
func (s *driver) record(k store.Key, e store.Entry) ([]byte, string, error) {
	if err := s.checkSize(k, e); err != nil {
		return nil, "", err
	}
	pxat := ""
	if !e.ExpiresAt.IsZero() {
		pxat = strconv.FormatInt(max(e.ExpiresAt.UnixMilli(), 1), 10)
	}
	return encodeRecord(e), pxat, nil
}

// checkSize refuses an entry whose value is over the size limit.
func (s *driver) checkSize(k store.Key, e store.Entry) error {
	if len(e.Value) > s.maxValue {
		return fmt.Errorf("redisstore: %s: value of %d bytes is larger than %d: %w", k, len(e.Value), s.maxValue, store.ErrTooLarge)
	}
	return nil
}

// Set stores e under k and wakes the key's watchers, in one script.
func (s *driver) Set(ctx context.Context, k store.Key, e store.Entry) error {
	rec, pxat, err := s.record(k, e)
	if err != nil {
		return err
	}
	return setScript.Run(ctx, s.client, []string{s.keys.name(k)}, rec, s.keys.channel(k), pxat).Err()
}

// Delete removes the entry for k and wakes its watchers.
func (s *driver) Delete(ctx context.Context, k store.Key) error {
	return delScript.Run(ctx, s.client, []string{s.keys.name(k)}, s.keys.channel(k)).Err()
}

// Swap implements store.Swapper in one script: it compares the value of k's record
// (after the record header) with old byte for byte, or checks that there is none
// (old == nil; a record that cannot be parsed counts as none, as it does for Get),
// then writes next with its expiry as Set does, or deletes k (next == nil), and wakes
// k's watchers.
func (s *driver) Swap(ctx context.Context, k store.Key, old []byte, next *store.Entry) (bool, error) {
	var rec []byte
	var pxat string
	if next != nil {
		var err error
		if rec, pxat, err = s.record(k, *next); err != nil {
			return false, err
		}
	}
	n, err := swapScript.Run(ctx, s.client, []string{s.keys.name(k)},
		flag(old != nil), old, rec, pxat, s.keys.channel(k)).Int()
	return n == 1, err
}

// flag is a boolean script argument.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Clear removes every record of the namespace, found with SCAN on every master.
func (s *driver) Clear(ctx context.Context, namespace string) error {
	_, err := s.evalAll(ctx, namespace, func(p redis.Pipeliner, name string) {
		delScript.Eval(ctx, p, []string{name}, channelOf(name))
	})
	return err
}

// evalAll finds every record of ns with SCAN on every master and, one pipeline per
// batch, queues eval's script for each. It returns how many of the scripts returned
// a positive number (removed their record).
func (s *driver) evalAll(ctx context.Context, ns string, eval func(p redis.Pipeliner, name string)) (int, error) {
	n := 0
	err := s.scan(ctx, s.keys.pattern(ns), func(names []string) error {
		cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, name := range names {
				eval(p, name)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range cmds {
			if v, _ := c.(*redis.Cmd).Int(); v > 0 {
				n++
			}
		}
		return nil
	})
	return n, err
}

// channelOf returns the channel of a record name.
func channelOf(name string) string { return name[:len(name)-1] + string(kindChannel) }

// DeleteBefore removes the records of the namespace stored before t. Each record is
// checked and removed by a script, so a record set again meanwhile is kept. Records
// under the namespace that cannot be parsed are removed too, and counted.
func (s *driver) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	cutoff := stampBytes(t)
	return s.evalAll(ctx, namespace, func(p redis.Pipeliner, name string) {
		deleteBeforeScript.Eval(ctx, p, []string{name}, cutoff, channelOf(name), recHead, recHeadExp)
	})
}

// errStop ends a scan early because the consumer of an iterator stopped.
var errStop = errors.New("stop")

// Entries lists the namespace's records: SCAN on every master, then one pipeline of
// GETRANGE (the header) and STRLEN per batch. A record that cannot be parsed is
// yielded as its key and an error matching ErrCorrupt; the listing goes on if the
// consumer does.
func (s *driver) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		seen := map[string]struct{}{} // SCAN may return a key twice
		internal := strings.HasPrefix(namespace, store.InternalPrefix)
		err := s.scan(ctx, s.keys.pattern(namespace), func(names []string) error {
			names = unseen(seen, names)
			cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, name := range names {
					p.GetRange(ctx, name, 0, headerLenExp-1)
					p.StrLen(ctx, name)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			for i, name := range names {
				k, ok := s.keys.parse(name)
				if !ok {
					continue
				}
				head, err1 := cmds[2*i].(*redis.StringCmd).Bytes()
				size, err2 := cmds[2*i+1].(*redis.IntCmd).Result()
				if err := errors.Join(err1, err2); err != nil {
					return err
				}
				if len(head) == 0 {
					continue // removed since SCAN saw it
				}
				info := store.Info{Key: k, Size: size}
				h, err := decodeHeader(head)
				if err != nil {
					if internal {
						// A lease record of an older release, or garbage: listed
						// so that the portable layer's ReleaseAll removes it, not
						// as an error that would stop it. Get reads it as a miss.
						if !yield(info, nil) {
							return errStop
						}
						continue
					}
					if !yield(info, fmt.Errorf("redisstore: entry %s: %w", k, err)) {
						return errStop
					}
					continue
				}
				info.Size, info.StoredAt, info.ExpiresAt = size-int64(h.len), h.at, h.exp
				if !yield(info, nil) {
					return errStop
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			yield(store.Info{}, err)
		}
	}
}

func unseen(seen map[string]struct{}, names []string) []string {
	out := names[:0]
	for _, n := range names {
		if _, dup := seen[n]; !dup {
			seen[n] = struct{}{}
			out = append(out, n)
		}
	}
	return out
}

// Namespaces lists the namespaces that have records (the portable layer's too, under
// store.InternalPrefix), sorted. It scans every key under the prefix, so it costs
// time in proportion to the whole database; it is meant for tools, not for calls.
func (s *driver) Namespaces(ctx context.Context) ([]string, error) {
	set := map[string]struct{}{}
	err := s.scan(ctx, s.keys.allPattern(), func(names []string) error {
		for _, name := range names {
			if k, ok := s.keys.parse(name); ok {
				set[k.Namespace] = struct{}{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(set)), nil
}

// scan calls fn with each batch of key names matching pattern, on every master of a
// Cluster, every shard of a Ring, or the one server of any other client. It stops at
// the first error fn returns.
func (s *driver) scan(ctx context.Context, pattern string, fn func([]string) error) error {
	var nodes []redis.Cmdable
	var mu sync.Mutex
	collect := func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		nodes = append(nodes, c)
		mu.Unlock()
		return nil
	}
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		if err := c.ForEachMaster(ctx, collect); err != nil {
			return err
		}
	case *redis.Ring:
		if err := c.ForEachShard(ctx, collect); err != nil {
			return err
		}
	default:
		nodes = append(nodes, s.client)
	}
	for _, node := range nodes {
		var cursor uint64
		for {
			names, next, err := node.Scan(ctx, cursor, pattern, scanCount).Result()
			if err != nil {
				return err
			}
			if len(names) > 0 {
				if err := fn(names); err != nil {
					return err
				}
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	return nil
}

// Close stops the notifier's subscription and, for a store opened from a URL, closes
// its client. A client passed to New stays open. Close is idempotent.
func (s *driver) Close() error {
	s.hubMu.Lock()
	if s.closed {
		s.hubMu.Unlock()
		return nil
	}
	s.closed = true
	h := s.hub
	s.hubMu.Unlock()
	if h != nil {
		h.close()
	}
	if s.owned {
		if c, ok := s.client.(io.Closer); ok {
			return c.Close()
		}
	}
	return nil
}

// GetAndCreate implements store.ReadOrAcquirer in one script: it reads k and every
// key of also, and creates rec at rk unless rk holds a record (one that cannot be
// parsed counts as none, as for Swap). A record of also that cannot be parsed fails
// the whole call with an error matching ErrCorrupt, before rk is touched.
func (s *Store) GetAndCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	return s.getAndCreate(ctx, k, also, rk, rec, false)
}

// GetOrCreate implements store.GetOrCreator with the script of GetAndCreate: when k
// holds a record (Redis drops expired ones itself), it creates nothing and does not
// read rk, so that a hit is one script of a few GETs and writes nothing.
func (s *Store) GetOrCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry) (store.GetAndCreateResult, error) {
	return s.getAndCreate(ctx, k, also, rk, rec, true)
}

// getAndCreate is GetAndCreate, or GetOrCreate when ifMissing.
func (s *Store) getAndCreate(ctx context.Context, k store.Key, also []store.Key, rk store.Key, rec store.Entry, ifMissing bool) (store.GetAndCreateResult, error) {
	var res store.GetAndCreateResult
	if err := s.checkSize(rk, rec); err != nil {
		return res, err
	}
	c := s.scriptCall(k, rk, also, headerLenExp+len(rec.Value)+24)
	c.record(rec)
	c.str(flag(ifMissing))
	out, err := c.run(ctx, s.client, getAndCreateScript).Slice()
	c.free()
	if err != nil {
		var i int
		if _, scanErr := fmt.Sscanf(err.Error(), "CORRUPT %d", &i); scanErr == nil && i >= 1 && i <= len(also) {
			return res, fmt.Errorf("redisstore: record %s: %w", also[i-1], ErrCorrupt)
		}
		return res, err
	}
	if len(out) != 3+len(also) {
		return res, fmt.Errorf("redisstore: GetAndCreate script returned %d values, want %d", len(out), 3+len(also))
	}
	if raw, ok := out[0].(string); ok {
		res.Entry, res.GetErr = decodeEntry(k, replyBytes(raw))
	} else {
		res.GetErr = &notFoundError{k}
	}
	if created, _ := out[1].(int64); created == 1 {
		res.Created, res.Cur = true, rec.Value
		if res.Cur == nil {
			res.Cur = []byte{}
		}
	} else if raw, ok := out[2].(string); ok || !ifMissing {
		cur, err := decodeRecord(replyBytes(raw))
		if err != nil { // the script parsed it; so must we
			return res, fmt.Errorf("redisstore: record %s: %w", rk, err)
		}
		res.Cur = cur.Value
	}
	res.Also, err = values(also, out[3:])
	return res, err
}

// SetAndDelete implements store.WriteAndReleaser in one script: it stores e at k as
// Set does, then deletes rk if rk's value is old byte for byte (never when old is
// nil), then reads every key of also. A record of also that cannot be parsed is an
// error matching ErrCorrupt; e is stored, and rk deleted, all the same.
func (s *Store) SetAndDelete(ctx context.Context, k store.Key, e store.Entry, rk store.Key, old []byte, also []store.Key) (bool, [][]byte, error) {
	if err := s.checkSize(k, e); err != nil {
		return false, nil, err
	}
	c := s.scriptCall(k, rk, also, s.keys.nameLen(k)+s.keys.nameLen(rk)+headerLenExp+len(e.Value)+24+len(old))
	c.record(e)
	c.str(flag(old != nil))
	c.bytes(old)
	c.channel(s.keys, k)
	c.channel(s.keys, rk)
	out, err := c.run(ctx, s.client, setAndDeleteScript).Slice()
	c.free()
	if err != nil {
		return false, nil, err
	}
	if len(out) != 1+len(also) {
		return false, nil, fmt.Errorf("redisstore: SetAndDelete script returned %d values, want %d", len(out), 1+len(also))
	}
	deleted, _ := out[0].(int64)
	vals, err := values(also, out[1:])
	return deleted == 1, vals, err
}

// scriptCall starts the call of a script whose keys are k, rk and also, with room
// for more bytes of arguments.
func (s *Store) scriptCall(k, rk store.Key, also []store.Key, more int) *scriptCall {
	size := more + s.keys.nameLen(k) + s.keys.nameLen(rk)
	for _, a := range also {
		size += s.keys.nameLen(a)
	}
	c := newScriptCall(size)
	c.key(s.keys, k)
	c.key(s.keys, rk)
	for _, a := range also {
		c.key(s.keys, a)
	}
	c.args()
	return c
}

// values decodes the records a script read for keys: nil for a missing one.
func values(keys []store.Key, raw []any) ([][]byte, error) {
	vals := make([][]byte, len(keys))
	for i, r := range raw {
		str, ok := r.(string)
		if !ok {
			continue
		}
		e, err := decodeRecord(replyBytes(str))
		if err != nil {
			return nil, fmt.Errorf("redisstore: record %s: %w", keys[i], err)
		}
		vals[i] = e.Value
		if vals[i] == nil {
			vals[i] = []byte{}
		}
	}
	return vals, nil
}

// base returns the driver under d: a *Store or a *ShardedStore, adapted or not.
func base(d store.Driver) *driver {
	switch s := store.Unwrap(d).(type) {
	case *Store:
		return s.driver
	case *ShardedStore:
		return s.driver
	}
	return nil
}
