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
	// The batch's misses share one allocation, where each cost one.
	var misses []notFoundError
	return s.getMany(ctx, nb, func(i int, rec string, found bool) {
		if !found {
			if misses == nil {
				misses = make([]notFoundError, len(ks))
			}
			misses[i].k = ks[i]
			es[i], errs[i] = store.Entry{}, &misses[i]
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

// maxBatchScriptKeys is the most records one batch script (swapManyScript,
// setAndDeleteManyScript) writes: a larger batch sends several, in one pipeline, so
// that no single script keeps the server from its other clients for long (a script
// runs to its end before the server reads another command).
const maxBatchScriptKeys = 512

// SwapMany implements store.SwapBatcher: on a single server (or Sentinel's primary)
// one script that applies Swap's script to each key in turn (swapManyScript; one per
// maxBatchScriptKeys keys, in one pipeline), and on a cluster or ring Swap's script
// once per key, all in one pipeline, which go-redis splits by slot and sends to each
// node at once (a script may touch one slot only). Each swap is atomic; the batch is
// not. A server that has not seen the script yet (NOSCRIPT) is given it, and the
// scripts it refused are sent again.
func (s *driver) SwapMany(ctx context.Context, ks []store.Key, olds [][]byte, nexts []*store.Entry) ([]bool, error) {
	if len(ks) != len(olds) || len(ks) != len(nexts) {
		return nil, fmt.Errorf("redisstore: SwapMany of %d keys, %d old values and %d entries; pass one of each per key", len(ks), len(olds), len(nexts))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, k := range ks {
		if nexts[i] != nil {
			if err := s.checkSize(k, *nexts[i]); err != nil {
				return nil, err
			}
		}
	}
	swapped := make([]bool, len(ks))
	if _, single := s.client.(*redis.Client); single {
		return swapped, s.swapManyScripted(ctx, ks, olds, nexts, swapped)
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
	err := evalEach(ctx, s.client, swapScript, indexes(len(ks)), func(p redis.Pipeliner, i int) *redis.Cmd {
		return swapScript.EvalSha(ctx, p, []string{s.keys.name(ks[i])}, argv[i]...)
	}, func(i int, cmd *redis.Cmd) error {
		n, err := cmd.Int()
		swapped[i] = n == 1
		return err
	})
	if err != nil {
		return nil, err
	}
	return swapped, nil
}

// swapManyScripted is SwapMany on one server: swapManyScript for each
// maxBatchScriptKeys keys, setting swapped.
func (s *driver) swapManyScripted(ctx context.Context, ks []store.Key, olds [][]byte, nexts []*store.Entry, swapped []bool) error {
	var calls []*scriptCall
	defer func() {
		for _, c := range calls {
			c.free()
		}
	}()
	for lo := 0; lo < len(ks); lo += maxBatchScriptKeys {
		hi := min(lo+maxBatchScriptKeys, len(ks))
		size := 0
		for i := lo; i < hi; i++ {
			size += 2*s.keys.nameLen(ks[i]) + 2 + len(olds[i])
			if nexts[i] != nil {
				size += headerLenExp + len(nexts[i].Value) + 24
			}
		}
		c := newScriptCall(size)
		calls = append(calls, c)
		for i := lo; i < hi; i++ {
			c.key(s.keys, ks[i])
		}
		c.args()
		for i := lo; i < hi; i++ {
			c.swap(s.keys, ks[i], olds[i], nexts[i])
		}
	}
	return evalEach(ctx, s.client, swapManyScript, indexes(len(calls)), func(p redis.Pipeliner, j int) *redis.Cmd {
		cmd := calls[j].cmd(ctx, swapManyScript)
		_ = p.Process(ctx, cmd)
		return cmd
	}, func(j int, cmd *redis.Cmd) error {
		out, err := cmd.Slice()
		if err != nil {
			return err
		}
		lo := j * maxBatchScriptKeys
		if want := min(lo+maxBatchScriptKeys, len(ks)) - lo; len(out) != want {
			return fmt.Errorf("redisstore: SwapMany script returned %d values for %d keys", len(out), want)
		}
		for x, v := range out {
			n, _ := v.(int64)
			swapped[lo+x] = n == 1
		}
		return nil
	})
}

// indexes returns 0, 1, ..., n-1.
func indexes(n int) []int {
	is := make([]int, n)
	for i := range is {
		is[i] = i
	}
	return is
}

// evalEach sends script once for each i in idx, as send queues it on the pipeline,
// all in one pipeline, and hands each reply to take, in idx's order. A server that
// has not seen the script yet (NOSCRIPT) is given it, and the scripts it refused are
// sent again, in order, once. The first error, of a reply or of take, ends it.
func evalEach(ctx context.Context, c redis.UniversalClient, script *redis.Script, idx []int, send func(p redis.Pipeliner, i int) *redis.Cmd, take func(i int, cmd *redis.Cmd) error) error {
	n := 0
	for _, i := range idx {
		n = max(n, i+1)
	}
	cmds := make([]*redis.Cmd, n)
	for attempt := 0; ; attempt++ {
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range idx {
				cmds[i] = send(p, i)
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

// SetAndDeleteMany implements store.SetAndDeleteBatcher: one script that applies
// SetAndDelete's to each key in turn and then reads also (setAndDeleteManyScript; one
// per maxBatchScriptKeys keys, in one pipeline to the one primary, the last reading
// also). Each write is atomic; the batch is not. An entry over the size limit fails
// alone, with store.ErrTooLarge. A server that has not seen the script yet (NOSCRIPT)
// is given it, and the scripts it refused are sent again, in order.
func (s *Store) SetAndDeleteMany(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key) ([]bool, []error, [][]byte, error) {
	deleted, errs, vals, _, err := s.setAndDeleteMany(ctx, ks, es, rks, olds, also, nil, nil, nil)
	return deleted, errs, vals, err
}

// SetAndDeleteManySwap implements store.SetAndDeleteSwapBatcher: SetAndDeleteMany,
// whose last script also swaps the marks (as Swap's script does), after every write
// and the read of also. A swap that ran before writes that had to be sent again
// (NOSCRIPT) reports false, so that the caller moves the mark once more, after them.
func (s *Store) SetAndDeleteManySwap(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key, sks []store.Key, solds [][]byte, ses []store.Entry) ([]bool, []error, [][]byte, []bool, error) {
	if len(sks) != len(solds) || len(sks) != len(ses) {
		return nil, nil, nil, nil, fmt.Errorf("redisstore: SetAndDeleteManySwap of %d keys to swap, %d old values and %d entries; pass one of each per key", len(sks), len(solds), len(ses))
	}
	return s.setAndDeleteMany(ctx, ks, es, rks, olds, also, sks, solds, ses)
}

// setAndDeleteMany is SetAndDeleteManySwap, and SetAndDeleteMany without marks.
func (s *Store) setAndDeleteMany(ctx context.Context, ks []store.Key, es []store.Entry, rks []store.Key, olds [][]byte, also []store.Key, sks []store.Key, solds [][]byte, ses []store.Entry) ([]bool, []error, [][]byte, []bool, error) {
	if len(ks) != len(es) || len(ks) != len(rks) || len(ks) != len(olds) {
		return nil, nil, nil, nil, fmt.Errorf("redisstore: SetAndDeleteMany of %d keys, %d entries, %d records and %d old values; pass one of each per key", len(ks), len(es), len(rks), len(olds))
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, nil, err
	}
	for j, k := range sks {
		if err := s.checkSize(k, ses[j]); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	deleted, errs, swapped := make([]bool, len(ks)), make([]error, len(ks)), make([]bool, len(sks))
	var idx []int // the writes to send
	for i, k := range ks {
		if errs[i] = s.checkSize(k, es[i]); errs[i] == nil {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		// Nothing written: no swap either (the swaps follow the writes).
		return deleted, errs, nil, swapped, nil
	}
	// One script per maxBatchScriptKeys writes; the last reads also and swaps.
	var calls []*scriptCall
	defer func() {
		for _, c := range calls {
			c.free()
		}
	}()
	for lo := 0; lo < len(idx); lo += maxBatchScriptKeys {
		chunk := idx[lo:min(lo+maxBatchScriptKeys, len(idx))]
		last := lo+maxBatchScriptKeys >= len(idx)
		size := 0
		for _, i := range chunk {
			size += 2*(s.keys.nameLen(ks[i])+s.keys.nameLen(rks[i])) + headerLenExp + len(es[i].Value) + 24 + len(olds[i]) + 1
		}
		if last {
			for _, a := range also {
				size += s.keys.nameLen(a)
			}
			for j, k := range sks {
				size += 2*s.keys.nameLen(k) + 2 + len(solds[j]) + headerLenExp + len(ses[j].Value) + 24
			}
		}
		c := newScriptCall(size + 16)
		calls = append(calls, c)
		for _, i := range chunk {
			c.key(s.keys, ks[i])
			c.key(s.keys, rks[i])
		}
		na, nm := 0, 0
		if last {
			na, nm = len(also), len(sks)
			for _, a := range also {
				c.key(s.keys, a)
			}
			for _, k := range sks {
				c.key(s.keys, k)
			}
		}
		c.args()
		c.int(len(chunk))
		c.int(na)
		for _, i := range chunk {
			// As SetAndDelete's: the record, its PXAT, whether to delete, the old
			// value, the channels of k and rk.
			c.record(es[i])
			c.str(flag(olds[i] != nil))
			c.bytes(olds[i])
			c.channel(s.keys, ks[i])
			c.channel(s.keys, rks[i])
		}
		for j, k := range sks[:nm] {
			c.swap(s.keys, k, solds[j], &ses[j])
		}
	}
	lastCall := len(calls) - 1
	var lastOut []any
	lastTaken, stale := false, false
	err := evalEach(ctx, s.client, setAndDeleteManyScript, indexes(len(calls)), func(p redis.Pipeliner, j int) *redis.Cmd {
		cmd := calls[j].cmd(ctx, setAndDeleteManyScript)
		_ = p.Process(ctx, cmd)
		return cmd
	}, func(j int, cmd *redis.Cmd) error {
		out, err := cmd.Slice()
		if err != nil {
			return err
		}
		lo := j * maxBatchScriptKeys
		chunk := idx[lo:min(lo+maxBatchScriptKeys, len(idx))]
		want := len(chunk)
		if j == lastCall {
			want += len(also) + len(sks)
		}
		if len(out) != want {
			return fmt.Errorf("redisstore: SetAndDeleteMany script returned %d values, want %d", len(out), want)
		}
		for x, i := range chunk {
			d, _ := out[x].(int64)
			deleted[i] = d == 1
		}
		if j != lastCall {
			// Writes sent again after the last script ran: its reads and swaps
			// came before them.
			stale = stale || lastTaken
			return nil
		}
		lastTaken = true
		lastOut = out[len(chunk) : len(chunk)+len(also)]
		for x, v := range out[len(chunk)+len(also):] {
			n, _ := v.(int64)
			swapped[x] = n == 1
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if stale {
		clear(swapped)
		if len(also) > 0 {
			// Read after every write, as the last script would have.
			names := make([]string, len(also))
			for i, a := range also {
				names[i] = s.keys.name(a)
			}
			if lastOut, err = s.client.MGet(ctx, names...).Result(); err != nil {
				return nil, nil, nil, nil, err
			}
		}
	}
	vals, err := values(also, lastOut)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return deleted, errs, vals, swapped, nil
}

var (
	_ store.SetAndDeleteSwapBatcher = (*Store)(nil)
	_ store.SetAndDeleteBatcher     = (*Store)(nil)
)
