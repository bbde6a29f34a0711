package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
)

var (
	_ store.Versioner       = (*Store)(nil)
	_ store.VersionedGetter = (*Store)(nil)
)

// versionInfix separates the prefix from a counter's hash tag:
//
//	<prefix>:version:{<name>}   a version counter: the decimal value
//
// with name escaped like an ID. A counter name never starts with "<prefix>:{", so the
// SCAN patterns of Clear, DeleteBefore, Entries, Leases, ReleaseAll and Namespaces
// never match one, and it ends in '}', where every entry and lease name ends in
// "}:<kind>", so it cannot collide with a record of another store whose prefix is
// "<prefix>:version" either.
const versionInfix = ":version:{"

// versionKey returns the name of the counter's record. Its hash tag is the escaped
// name, so counters spread over the slots of a cluster.
func (kr keyer) versionKey(name string) string {
	var b strings.Builder
	b.Grow(len(kr.prefix) + len(versionInfix) + len(name) + 1)
	b.WriteString(kr.prefix)
	b.WriteString(versionInfix)
	appendEscaped(&b, name)
	b.WriteByte('}')
	return b.String()
}

func validateCounters(names []string) error {
	for _, n := range names {
		if err := store.ValidateCounter(n); err != nil {
			return err
		}
	}
	return nil
}

// Versions returns the current value of each named counter (0 for one never bumped),
// in one round trip (see getMany).
func (s *Store) Versions(ctx context.Context, names []string) ([]uint64, error) {
	if err := validateCounters(names); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]uint64, len(names))
	if len(names) == 0 {
		return out, nil
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.keys.versionKey(n)
	}
	vals, err := s.getMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	if err := parseVersions(out, names, vals); err != nil {
		return nil, err
	}
	return out, nil
}

// getMany reads keys in one round trip: one MGET on a single server, where it is
// one command, and otherwise (Cluster, Ring) a pipeline of GETs, since MGET fails
// when its keys live on different slots or shards. A missing key reads as nil.
func (s *Store) getMany(ctx context.Context, keys []string) ([]any, error) {
	if c, ok := s.client.(*redis.Client); ok {
		return c.MGet(ctx, keys...).Result()
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]any, len(keys))
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, err
		default:
			out[i] = v
		}
	}
	return out, nil
}

// parseVersions parses the counters' values (nil for a missing counter) into out.
func parseVersions(out []uint64, names []string, vals []any) error {
	for i, v := range vals {
		if v == nil {
			out[i] = 0
			continue
		}
		str, _ := v.(string)
		n, err := strconv.ParseUint(str, 10, 64)
		if err != nil {
			return fmt.Errorf("redisstore: counter %q holds %q: %w", names[i], v, ErrCorrupt)
		}
		out[i] = n
	}
	return nil
}

// Bump sets the named counter to a fresh random non-zero value with a plain SET and
// returns it. Concurrent bumps may overwrite each other; each leaves a value no entry
// has recorded.
func (s *Store) Bump(ctx context.Context, name string) (uint64, error) {
	if err := store.ValidateCounter(name); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	v := store.NewVersion()
	if err := s.client.Set(ctx, s.keys.versionKey(name), strconv.FormatUint(v, 10), 0).Err(); err != nil {
		return 0, err
	}
	return v, nil
}

// GetVersioned returns the entry for k and the current value of each named counter
// in one round trip: one MGET on a single server; on a Cluster or Ring, a pipeline
// of GETs, which go-redis sends to every node concerned at once. A hit on a tagged
// entry so costs one round trip, like an untagged one.
func (s *Store) GetVersioned(ctx context.Context, k store.Key, names []string) (store.Entry, []uint64, error) {
	if len(names) == 0 {
		e, err := s.Get(ctx, k)
		if err != nil {
			return store.Entry{}, nil, err
		}
		return e, []uint64{}, nil
	}
	if err := k.Validate(); err != nil {
		return store.Entry{}, nil, err
	}
	if err := validateCounters(names); err != nil {
		return store.Entry{}, nil, err
	}
	if err := ctx.Err(); err != nil {
		return store.Entry{}, nil, err
	}
	keys := make([]string, 1+len(names))
	keys[0] = s.keys.key(k, kindValue)
	for i, n := range names {
		keys[1+i] = s.keys.versionKey(n)
	}
	vals, err := s.getMany(ctx, keys)
	if err != nil {
		return store.Entry{}, nil, err
	}
	if vals[0] == nil {
		return store.Entry{}, nil, &notFoundError{k}
	}
	rec, _ := vals[0].(string)
	e, err := decodeRecord([]byte(rec))
	if err != nil {
		return store.Entry{}, nil, fmt.Errorf("redisstore: entry %s: %w (%w)", k, err, store.ErrNotFound)
	}
	out := make([]uint64, len(names))
	if err := parseVersions(out, names, vals[1:]); err != nil {
		return store.Entry{}, nil, err
	}
	return e, out, nil
}
