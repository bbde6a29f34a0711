package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
)

// GetMany reads the entries of ks in one round trip: one MGET on a single server, and
// on a cluster or ring a pipeline of GETs, which go-redis splits by slot and sends to
// each node at once (an MGET across slots would fail with CROSSSLOT). See
// store.Batcher for the results.
func (s *driver) GetMany(ctx context.Context, ks []store.Key) ([]store.Entry, []error, error) {
	// A batch is also used bare (store.GetMany on the driver), so it checks the
	// context itself: a pipeline would report a cancelled one per command.
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if len(ks) == 0 {
		return nil, nil, nil
	}
	es, errs := make([]store.Entry, len(ks)), make([]error, len(ks))
	if err := s.getManyInto(ctx, ks, es, errs); err != nil {
		return nil, nil, err
	}
	return es, errs, nil
}

// GetManyInto implements store.IntoBatcher: GetMany into the caller's memory.
// store.GetManyInto, its one caller, has checked the lengths.
func (s *driver) GetManyInto(ctx context.Context, ks []store.Key, es []store.Entry, errs []error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ks) == 0 {
		return nil
	}
	return s.getManyInto(ctx, ks, es, errs)
}

var _ store.IntoBatcher = (*driver)(nil)

// getManyInto is GetManyInto for a live ctx and at least one key.
func (s *driver) getManyInto(ctx context.Context, ks []store.Key, es []store.Entry, errs []error) error {
	nb := s.keys.namesPooled(ks)
	defer nb.put() // the names went to the wire; nothing holds them after getMany
	return s.getMany(ctx, nb, func(i int, rec string, found bool) {
		if !found {
			es[i], errs[i] = store.Entry{}, &notFoundError{ks[i]}
			return
		}
		// An empty record is damage, as Get reports it: no record is empty (the
		// shortest is a header). A warm batch of 100 entries copied 100 values only
		// to drop the strings: the entries keep go-redis's own.
		es[i], errs[i] = decodeEntry(ks[i], replyBytes(rec))
	})
}

// SetMany stores es[i] under ks[i] in one pipeline: a SET and a PUBLISH to the key's
// watchers per entry, split by slot on a cluster. Each SET is atomic; the batch is
// not. An entry over the size limit fails alone, with store.ErrTooLarge.
func (s *driver) SetMany(ctx context.Context, ks []store.Key, es []store.Entry) ([]error, error) {
	if len(ks) != len(es) {
		return nil, fmt.Errorf("redisstore: SetMany of %d keys and %d entries; pass one entry per key", len(ks), len(es))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	errs := make([]error, len(ks))
	cmds := make([]*redis.StatusCmd, len(ks))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range ks {
			if len(es[i].Value) > s.maxValue {
				errs[i] = fmt.Errorf("redisstore: %s: value of %d bytes is larger than %d: %w", k, len(es[i].Value), s.maxValue, store.ErrTooLarge)
				continue
			}
			if exp := es[i].ExpiresAt; !exp.IsZero() {
				cmds[i] = p.SetArgs(ctx, s.keys.name(k), encodeRecord(es[i]), redis.SetArgs{ExpireAt: time.UnixMilli(max(exp.UnixMilli(), 1))})
			} else {
				cmds[i] = p.Set(ctx, s.keys.name(k), encodeRecord(es[i]), 0)
			}
			p.Publish(ctx, s.keys.channel(k), "v")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		// A pipeline reports its first failed command; each command says for itself.
		failed := 0
		for i, c := range cmds {
			if c != nil && c.Err() != nil {
				errs[i] = c.Err()
				failed++
			}
		}
		if failed == 0 {
			return nil, err
		}
	}
	return errs, nil
}

// getMany reads the records named nb.names in one round trip, and calls got for
// each, in order: found reports a record, which rec holds (perhaps empty: damage a
// caller reports, as Get does), and is false for a missing key. On a single server
// it is one MGET, where it is one command, and otherwise (Cluster, Ring) a pipeline
// of GETs, since MGET fails when its keys live on different slots or shards. An
// error is a failure of the whole read (got may have been called for some keys).
func (s *driver) getMany(ctx context.Context, nb *nameBuf, got func(i int, rec string, found bool)) error {
	keys := nb.names
	if c, ok := s.client.(*redis.Client); ok {
		// MGet itself boxes each key into an interface, one allocation per key;
		// boxStrings passes pointers instead, in the names' pooled memory.
		if cap(nb.args) < 1+len(keys) {
			nb.args = make([]any, 1+len(keys))
		}
		args := nb.args[:1+len(keys)]
		args[0] = "mget"
		boxStrings(args[1:], keys)
		// The reply is read as []any, not as strings (StringSliceCmd): a string
		// slice reads a missing key and an empty value both as "", and an empty
		// value is a damaged record to report, not a miss. Each value costs one
		// small allocation more (its interface); in a warm batch of 100 against
		// the MGET, paired in one process, it did not show.
		cmd := redis.NewSliceCmd(ctx, args...)
		_ = c.Process(ctx, cmd) // as MGet does: the error is cmd's
		clear(args)             // on the wire; the pool keeps no pointer to the names
		vals, err := cmd.Result()
		if err != nil {
			return err
		}
		if len(vals) != len(keys) {
			return fmt.Errorf("redisstore: MGET returned %d values for %d keys", len(vals), len(keys))
		}
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				got(i, "", false)
			case string:
				got(i, v, true)
			default:
				return fmt.Errorf("redisstore: MGET returned a %T for %s", v, keys[i])
			}
		}
		return nil
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	for i, c := range cmds {
		v, err := c.Result()
		got(i, v, err == nil)
	}
	return nil
}

// SwapMany implements store.SwapBatcher: Swap's script once per key, all in one
// pipeline (one round trip on a single server; on a cluster or ring, go-redis splits
// it by slot and sends to each node at once). Each swap is atomic; the batch is not.
// A server that has not seen the script yet (NOSCRIPT) is given it, and the swaps it
// refused are sent again.
func (s *driver) SwapMany(ctx context.Context, ks []store.Key, olds [][]byte, nexts []*store.Entry) ([]bool, error) {
	if len(ks) != len(olds) || len(ks) != len(nexts) {
		return nil, fmt.Errorf("redisstore: SwapMany of %d keys, %d old values and %d entries; pass one of each per key", len(ks), len(olds), len(nexts))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	argv := make([][]any, len(ks))
	for i, k := range ks {
		var rec []byte
		var pxat string
		if nexts[i] != nil {
			var err error
			if rec, pxat, err = s.record(k, *nexts[i]); err != nil {
				return nil, err
			}
		}
		argv[i] = []any{flag(olds[i] != nil), olds[i], rec, pxat, s.keys.channel(k)}
	}
	swapped := make([]bool, len(ks))
	idx := make([]int, len(ks))
	for i := range idx {
		idx[i] = i
	}
	err := evalEach(ctx, s.client, swapScript, idx, func(i int) []string { return []string{s.keys.name(ks[i])} }, argv,
		func(i int, cmd *redis.Cmd) error {
			n, err := cmd.Int()
			swapped[i] = n == 1
			return err
		})
	if err != nil {
		return nil, err
	}
	return swapped, nil
}

// evalEach sends script once for each i in idx, with keys(i) and argv[i], all in one
// pipeline, and hands each reply to take, in idx's order. A server that has not seen
// the script yet (NOSCRIPT) is given it, and the scripts it refused are sent again,
// in order, once. The first error, of a reply or of take, ends it.
func evalEach(ctx context.Context, c redis.UniversalClient, script *redis.Script, idx []int, keys func(i int) []string, argv [][]any, take func(i int, cmd *redis.Cmd) error) error {
	for attempt := 0; ; attempt++ {
		cmds := make([]*redis.Cmd, len(argv))
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range idx {
				cmds[i] = script.EvalSha(ctx, p, keys(i), argv[i]...)
			}
			return nil
		})
		var again []int
		for _, i := range idx {
			if err := cmds[i].Err(); attempt == 0 && err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, i)
				continue
			}
			if err := take(i, cmds[i]); err != nil {
				return err
			}
		}
		if len(again) == 0 {
			return nil
		}
		if err := script.Load(ctx, c).Err(); err != nil {
			return err
		}
		idx = again
	}
}

var _ store.SwapBatcher = (*driver)(nil)

// boxStrings sets dst[i] to &ss[i]. go-redis writes a *string argument as the
// string it points at (and routes by it), and a pointer fits in an interface
// without an allocation, where boxing each string would allocate once per key.
// ss must not change while dst is in use.
func boxStrings(dst []any, ss []string) {
	for i := range ss {
		dst[i] = &ss[i]
	}
}

// SetAndDeleteMany implements store.SetAndDeleteBatcher: SetAndDelete's script once
// per key, all in one pipeline to the one primary, where they run in order; the last
// script sent also reads also, after every write. Each script is atomic; the batch is
// not. An entry over the size limit fails alone, with store.ErrTooLarge. A server that
// has not seen the script yet (NOSCRIPT) is given it, and the scripts it refused are
// sent again, in order.
func (s *Store) SetAndDeleteMany(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key) ([]bool, []error, [][]byte, error) {
	b, err := s.newSetAndDeleteBatch(ctx, ks, es, rks, olds, also)
	if err != nil || len(b.idx) == 0 {
		return b.deleted, b.errs, nil, err
	}
	if err := evalEach(ctx, s.client, setAndDeleteScript, b.idx, func(i int) []string { return b.keys[i] }, b.argv, b.take); err != nil {
		return nil, nil, nil, err
	}
	return b.result(also)
}

// setAndDeleteBatch is SetAndDeleteMany's scripts and what their replies tell.
type setAndDeleteBatch struct {
	errs    []error
	keys    [][]string
	argv    [][]any
	idx     []int // the scripts to send
	last    int   // the one that reads also
	deleted []bool
	lastOut []any
}

func (s *Store) newSetAndDeleteBatch(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key) (*setAndDeleteBatch, error) {
	if len(ks) != len(es) || len(ks) != len(rks) || len(ks) != len(olds) {
		return &setAndDeleteBatch{}, fmt.Errorf("redisstore: SetAndDeleteMany of %d keys, %d entries, %d records and %d old values; pass one of each per key", len(ks), len(es), len(rks), len(olds))
	}
	if err := ctx.Err(); err != nil {
		return &setAndDeleteBatch{}, err
	}
	b := &setAndDeleteBatch{errs: make([]error, len(ks)), keys: make([][]string, len(ks)), argv: make([][]any, len(ks)), deleted: make([]bool, len(ks))}
	for i, k := range ks {
		rec, pxat, err := s.record(k, es[i])
		if err != nil {
			b.errs[i] = err
			continue
		}
		// As SetAndDelete: KEYS k, rk (and also, on the last); ARGV the record, its
		// PXAT, whether to delete, the old value, the channels of k and rk.
		b.keys[i] = []string{s.keys.name(k), s.keys.name(rks[i])}
		b.argv[i] = []any{rec, pxat, flag(olds[i] != nil), olds[i], s.keys.channel(k), s.keys.channel(rks[i])}
		b.idx = append(b.idx, i)
	}
	if len(b.idx) > 0 {
		b.last = b.idx[len(b.idx)-1]
		for _, a := range also {
			b.keys[b.last] = append(b.keys[b.last], s.keys.name(a))
		}
	}
	return b, nil
}

// take reads the reply of script i.
func (b *setAndDeleteBatch) take(i int, cmd *redis.Cmd) error {
	out, err := cmd.Slice()
	if err != nil {
		return err
	}
	if len(out) != len(b.keys[i])-1 {
		return fmt.Errorf("redisstore: SetAndDelete script returned %d values, want %d", len(out), len(b.keys[i])-1)
	}
	d, _ := out[0].(int64)
	b.deleted[i] = d == 1
	if i == b.last {
		b.lastOut = out[1:]
	}
	return nil
}

func (b *setAndDeleteBatch) result(also []store.Key) ([]bool, []error, [][]byte, error) {
	vals, err := values(also, b.lastOut)
	if err != nil {
		return nil, nil, nil, err
	}
	return b.deleted, b.errs, vals, nil
}

// SetAndDeleteManySwap implements store.SetAndDeleteSwapBatcher: SetAndDeleteMany's
// scripts, followed in the same pipeline by Swap's script once per swap, which the
// one primary runs after every write of ks. A server that has not seen a script yet
// (NOSCRIPT) is given it, and the scripts it refused are sent again, the writes first.
func (s *Store) SetAndDeleteManySwap(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key, sks []store.Key, solds [][]byte, ses []store.Entry) ([]bool, []error, [][]byte, []bool, error) {
	if len(sks) != len(solds) || len(sks) != len(ses) {
		return nil, nil, nil, nil, fmt.Errorf("redisstore: SetAndDeleteManySwap of %d keys to swap, %d old values and %d entries; pass one of each per key", len(sks), len(solds), len(ses))
	}
	b, err := s.newSetAndDeleteBatch(ctx, ks, es, rks, olds, also)
	swapped := make([]bool, len(sks))
	if err != nil || len(b.idx) == 0 {
		// Nothing written: no swap either (the swaps follow the writes).
		return b.deleted, b.errs, nil, swapped, err
	}
	sargv := make([][]any, len(sks))
	sidx := make([]int, len(sks)) // the swaps to send
	for j, k := range sks {
		rec, pxat, err := s.record(k, ses[j])
		if err != nil {
			return nil, nil, nil, nil, err
		}
		sargv[j] = []any{flag(solds[j] != nil), solds[j], rec, pxat, s.keys.channel(k)}
		sidx[j] = j
	}
	idx := b.idx
	for attempt := 0; ; attempt++ {
		cmds := make([]*redis.Cmd, len(ks))
		scmds := make([]*redis.Cmd, len(sks))
		_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range idx {
				cmds[i] = setAndDeleteScript.EvalSha(ctx, p, b.keys[i], b.argv[i]...)
			}
			for _, j := range sidx {
				scmds[j] = swapScript.EvalSha(ctx, p, []string{s.keys.name(sks[j])}, sargv[j]...)
			}
			return nil
		})
		var again, sagain []int
		for _, i := range idx {
			if err := cmds[i].Err(); attempt == 0 && err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, i)
				continue
			}
			if err := b.take(i, cmds[i]); err != nil {
				return nil, nil, nil, nil, err
			}
		}
		for _, j := range sidx {
			n, err := scmds[j].Int()
			switch {
			case err == nil:
				swapped[j] = n == 1
			case attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT"):
				sagain = append(sagain, j)
			default:
				return nil, nil, nil, nil, err
			}
		}
		if len(again) == 0 && len(sagain) == 0 {
			break
		}
		if len(again) > 0 {
			// A swap that ran before writes that are sent again did not follow them:
			// reported as not swapped, so that the caller moves the mark once more.
			clear(swapped)
			if err := setAndDeleteScript.Load(ctx, s.client).Err(); err != nil {
				return nil, nil, nil, nil, err
			}
		}
		if len(sagain) > 0 {
			if err := swapScript.Load(ctx, s.client).Err(); err != nil {
				return nil, nil, nil, nil, err
			}
		}
		idx, sidx = again, sagain
	}
	deleted, errs, vals, err := b.result(also)
	return deleted, errs, vals, swapped, err
}

var _ store.SetAndDeleteSwapBatcher = (*Store)(nil)

var _ store.SetAndDeleteBatcher = (*Store)(nil)
