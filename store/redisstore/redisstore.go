package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"strconv"
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

// Store is a store.Store (and store.Notifier) on a go-redis client.
type Store struct {
	client   redis.UniversalClient
	owned    bool // opened from a URL: Close closes client
	keys     keyer
	log      *slog.Logger
	maxValue int

	hubMu  sync.Mutex
	hub    *hub // started by the first Watch
	closed bool
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// New returns a store that keeps its records in the server client talks to: a
// *redis.Client (single node or Sentinel failover), a *redis.ClusterClient or a
// *redis.Ring. The client stays the caller's: Close does not close it.
func New(client redis.UniversalClient, opts *Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: nil client")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	kr, err := newKeyer(o.Prefix)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.MaxValueSize < 0:
		return nil, fmt.Errorf("redisstore: negative MaxValueSize %d", o.MaxValueSize)
	case o.MaxValueSize == 0 || o.MaxValueSize > maxValueSize:
		o.MaxValueSize = maxValueSize
	}
	return &Store{client: client, keys: kr, log: o.Logger, maxValue: o.MaxValueSize}, nil
}

// Client returns the client the store uses.
func (s *Store) Client() redis.UniversalClient { return s.client }

// Get returns the entry for k with one GET. A record that cannot be parsed is an
// error matching both store.ErrNotFound and ErrCorrupt.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Entry, error) {
	if err := k.Validate(); err != nil {
		return store.Entry{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Entry{}, err
	}
	b, err := s.client.Get(ctx, s.keys.key(k, kindValue)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return store.Entry{}, &notFoundError{k}
	case err != nil:
		return store.Entry{}, err
	}
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

// Set stores e under k and wakes the key's watchers, in one script.
func (s *Store) Set(ctx context.Context, k store.Key, e store.Entry) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if len(e.Value) > s.maxValue {
		return fmt.Errorf("redisstore: %s: value of %d bytes is larger than %d: %w", k, len(e.Value), s.maxValue, store.ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pxat := "" // no expiry: SET also takes any old one off
	if !e.ExpiresAt.IsZero() {
		pxat = strconv.FormatInt(max(e.ExpiresAt.UnixMilli(), 1), 10)
	}
	return setScript.Run(ctx, s.client, []string{s.keys.key(k, kindValue)},
		encodeRecord(e), s.keys.key(k, kindChannel), pxat).Err()
}

// Delete removes the entry for k and wakes its watchers.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return delScript.Run(ctx, s.client, []string{s.keys.key(k, kindValue)}, s.keys.key(k, kindChannel), "v").Err()
}

// Clear removes every entry of the namespace, found with SCAN on every master.
func (s *Store) Clear(ctx context.Context, namespace string) error {
	_, err := s.removeAll(ctx, namespace, kindValue, "v")
	return err
}

// removeAll runs delScript on every record of the given kind in ns.
func (s *Store) removeAll(ctx context.Context, ns string, kind byte, payload string) (int, error) {
	return s.evalAll(ctx, ns, kind, func(p redis.Pipeliner, name string) {
		delScript.Eval(ctx, p, []string{name}, channelOf(name), payload)
	})
}

// evalAll finds every record of the given kind in ns with SCAN on every master and,
// one pipeline per batch, queues eval's script for each. It returns how many of the
// scripts returned a positive number (removed their record).
func (s *Store) evalAll(ctx context.Context, ns string, kind byte, eval func(p redis.Pipeliner, name string)) (int, error) {
	if err := store.ValidateNamespace(ns); err != nil {
		return 0, err
	}
	n := 0
	err := s.scan(ctx, s.keys.pattern(ns, kind), func(names []string) error {
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

// channelOf returns the channel of a value or lease key name.
func channelOf(name string) string { return name[:len(name)-1] + string(kindChannel) }

// DeleteBefore removes the entries of the namespace stored before t. Each entry is
// checked and removed by a script, so an entry set again meanwhile is kept. Records
// under the namespace that cannot be parsed are removed too, and counted.
func (s *Store) DeleteBefore(ctx context.Context, namespace string, t time.Time) (int, error) {
	cutoff := stampBytes(t)
	return s.evalAll(ctx, namespace, kindValue, func(p redis.Pipeliner, name string) {
		deleteBeforeScript.Eval(ctx, p, []string{name}, cutoff, channelOf(name), recHead, recHeadExp)
	})
}

// errStop ends a scan early because the consumer of an iterator stopped.
var errStop = errors.New("stop")

// Entries lists the namespace's entries: SCAN on every master, then one pipeline of
// GETRANGE (the header) and STRLEN per batch. A record that cannot be parsed is
// yielded as its key and an error matching ErrCorrupt; the listing goes on if the
// consumer does.
func (s *Store) Entries(ctx context.Context, namespace string) iter.Seq2[store.Info, error] {
	return func(yield func(store.Info, error) bool) {
		if err := store.ValidateNamespace(namespace); err != nil {
			yield(store.Info{}, err)
			return
		}
		seen := map[string]struct{}{} // SCAN may return a key twice
		err := s.scan(ctx, s.keys.pattern(namespace, kindValue), func(names []string) error {
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
				k, _, ok := s.keys.parse(name)
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
				info := store.Info{Key: k, Size: size - headerLen}
				h, err := decodeHeader(head)
				if err != nil {
					info.Size = size
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

// Namespaces lists the namespaces that have entries or leases, sorted. It scans
// every key under the prefix, so it costs time in proportion to the whole database;
// it is meant for tools, not for calls.
func (s *Store) Namespaces(ctx context.Context) ([]string, error) {
	set := map[string]struct{}{}
	err := s.scan(ctx, s.keys.allPattern(), func(names []string) error {
		for _, name := range names {
			if k, kind, ok := s.keys.parse(name); ok && (kind == kindValue || kind == kindLease) {
				set[k.Namespace] = struct{}{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out, nil
}

// ttlMillis rounds ttl up to whole milliseconds, the unit of PX.
func ttlMillis(ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("redisstore: lease ttl %s is not positive", ttl)
	}
	return strconv.FormatInt(int64((ttl+time.Millisecond-1)/time.Millisecond), 10), nil
}

// Acquire takes the lease with SET NX PX in a script that, when the lease is held,
// returns the holder and its remaining time in the same round trip. The lease
// expires by the server's clock, so clients' clocks need not agree.
func (s *Store) Acquire(ctx context.Context, k store.Key, o store.Owner, ttl time.Duration) (store.Lease, error) {
	if err := k.Validate(); err != nil {
		return store.Lease{}, err
	}
	ms, err := ttlMillis(ttl)
	if err != nil {
		return store.Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Lease{}, err
	}
	start := time.Now()
	res, err := acquireScript.Run(ctx, s.client, []string{s.keys.key(k, kindLease)},
		encodeOwner(o), ms, s.keys.key(k, kindChannel)).Result()
	if err != nil {
		return store.Lease{}, err
	}
	if r, ok := res.([]any); ok {
		holder := store.Lease{Key: k}
		if len(r) > 0 {
			if rec, ok := r[0].(string); ok {
				holder.Owner, _ = decodeOwner(rec) // a garbled holder stays unnamed
			}
		}
		if len(r) > 1 {
			if pttl, ok := r[1].(int64); ok && pttl >= 0 {
				holder.ExpiresAt = time.Now().Add(time.Duration(pttl) * time.Millisecond)
			}
		}
		return store.Lease{}, &store.HeldError{Holder: holder}
	}
	return store.Lease{Key: k, Owner: o, ExpiresAt: start.Add(ttl)}, nil
}

// Renew extends the lease if the stored owner record is still l.Owner's.
func (s *Store) Renew(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error) {
	if err := l.Key.Validate(); err != nil {
		return store.Lease{}, err
	}
	ms, err := ttlMillis(ttl)
	if err != nil {
		return store.Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Lease{}, err
	}
	start := time.Now()
	n, err := renewScript.Run(ctx, s.client, []string{s.keys.key(l.Key, kindLease)},
		encodeOwner(l.Owner), ms, s.keys.key(l.Key, kindChannel)).Int()
	if err != nil {
		return store.Lease{}, err
	}
	if n == 0 {
		return store.Lease{}, fmt.Errorf("redisstore: renew %s by %s: %w", l.Key, l.Owner, store.ErrLeaseLost)
	}
	l.ExpiresAt = start.Add(ttl)
	return l, nil
}

// Release removes the lease if it is still l.Owner's, and wakes the key's watchers.
func (s *Store) Release(ctx context.Context, l store.Lease) error {
	if err := l.Key.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return releaseScript.Run(ctx, s.client, []string{s.keys.key(l.Key, kindLease)},
		encodeOwner(l.Owner), s.keys.key(l.Key, kindChannel)).Err()
}

// Leases lists the namespace's unexpired leases: SCAN on every master, then GET and
// PTTL of each, pipelined.
func (s *Store) Leases(ctx context.Context, namespace string) iter.Seq2[store.Lease, error] {
	return func(yield func(store.Lease, error) bool) {
		if err := store.ValidateNamespace(namespace); err != nil {
			yield(store.Lease{}, err)
			return
		}
		seen := map[string]struct{}{}
		err := s.scan(ctx, s.keys.pattern(namespace, kindLease), func(names []string) error {
			names = unseen(seen, names)
			cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, name := range names {
					p.Get(ctx, name)
					p.PTTL(ctx, name)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			now := time.Now()
			for i, name := range names {
				k, _, ok := s.keys.parse(name)
				if !ok {
					continue
				}
				rec, err := cmds[2*i].(*redis.StringCmd).Result()
				if errors.Is(err, redis.Nil) {
					continue // expired or released since SCAN saw it
				} else if err != nil {
					return err
				}
				pttl, err := cmds[2*i+1].(*redis.DurationCmd).Result()
				if err != nil {
					return err
				}
				if pttl < 0 {
					continue // gone (-2); or no expiry (-1), which the store never writes
				}
				l := store.Lease{Key: k, ExpiresAt: now.Add(pttl)}
				o, err := decodeOwner(rec)
				if err != nil {
					err = fmt.Errorf("redisstore: lease %s: %w", k, err)
				}
				l.Owner = o
				if !yield(l, err) {
					return errStop
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			yield(store.Lease{}, err)
		}
	}
}

// ReleaseAll removes every lease of the namespace and wakes their watchers.
func (s *Store) ReleaseAll(ctx context.Context, namespace string) (int, error) {
	return s.removeAll(ctx, namespace, kindLease, "l")
}

// scan calls fn with each batch of key names matching pattern, on every master of a
// Cluster, every shard of a Ring, or the one server of any other client. It stops at
// the first error fn returns.
func (s *Store) scan(ctx context.Context, pattern string, fn func([]string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
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
func (s *Store) Close() error {
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
