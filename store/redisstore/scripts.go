package redisstore

import "github.com/redis/go-redis/v9"

// Every script that changes a record publishes "v" on the record's channel, which its
// key's watchers (and the watchers of its lease) share; getAndCreateScript, which
// takes a free lease, does not (see there). The single-key scripts touch
// only KEYS[1] and publish on a channel with its hash tag, so they run on a Cluster;
// getAndCreateScript and setAndDeleteScript take several keys and run only where one
// primary holds every key (see Store).

// valueOf is the Lua function that returns the value of a record (the bytes after its
// header, as decodeHeader reads it), or nil when there is no record or it cannot be
// parsed: such a record is no entry, for Swap as for Get.
const valueOf = `
local function valueOf(r)
  if not r then return nil end
  if string.byte(r, 1) ~= 99 then return nil end
  local v = string.byte(r, 2)
  if v == 1 and #r >= 10 then return string.sub(r, 11) end
  if v == 2 and #r >= 18 and string.sub(r, 11, 18) ~= string.rep('\0', 8) then
    return string.sub(r, 19)
  end
  return nil
end
local function set(k, rec, pxat)
  if pxat ~= '' then
    redis.call('SET', k, rec, 'PXAT', pxat)
  else
    redis.call('SET', k, rec)
  end
end
`

// swapFn is the Lua function of Swap, for one record k: cmp "1" if old is the value
// to compare with, "0" if the record must be absent; rec the new record, or empty to
// delete; pxat its PXAT or empty; ch k's channel. It returns 1 if it swapped. Every
// script that swaps calls it, so that a batch swaps each record as Swap does.
//
// A swap from no record to one (a lease taken, nearly always where there is none) is
// a SET NX, and reads the record only when there is one, to replace it if it cannot
// be parsed: one call in the script where a GET then a SET were two. Each call made
// from Lua cost the server about 1.3 µs, more than the command itself, and a cold
// batch of 100 keys made about 700.
const swapFn = `
local function swap(k, cmp, old, rec, pxat, ch)
  if cmp == '0' and rec ~= '' then
    local created
    if pxat ~= '' then
      created = redis.call('SET', k, rec, 'NX', 'PXAT', pxat)
    else
      created = redis.call('SET', k, rec, 'NX')
    end
    if not created then
      if valueOf(redis.call('GET', k)) then return 0 end
      set(k, rec, pxat)
    end
    redis.call('PUBLISH', ch, 'v')
    return 1
  end
  local cur = valueOf(redis.call('GET', k))
  if cmp == '0' then
    if cur then return 0 end
  elseif cur ~= old then
    return 0
  end
  if rec == '' then
    redis.call('DEL', k)
  else
    set(k, rec, pxat)
  end
  redis.call('PUBLISH', ch, 'v')
  return 1
end
`

var (
	// KEYS[1] record; ARGV[1] record, ARGV[2] channel, ARGV[3] the expiry in Unix
	// milliseconds (PXAT), or empty for none.
	setScript = redis.NewScript(valueOf + `
set(KEYS[1], ARGV[1], ARGV[3])
redis.call('PUBLISH', ARGV[2], 'v')
return 1
`)

	// KEYS[1] record; ARGV[1] channel.
	delScript = redis.NewScript(`
local n = redis.call('UNLINK', KEYS[1])
if n > 0 then redis.call('PUBLISH', ARGV[1], 'v') end
return n
`)

	// KEYS[1] record; ARGV[1] "1" if ARGV[2] is the value to compare with, "0" if the
	// record must be absent; ARGV[3] the new record, or empty to delete; ARGV[4] its
	// PXAT or empty; ARGV[5] channel. Returns 1 if it swapped.
	swapScript = redis.NewScript(valueOf + swapFn + `
return swap(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
`)

	// swapManyScript is swapScript for each of KEYS in turn: KEYS[i] record, ARGV[5i-4
	// ... 5i] swapScript's ARGV for it. Returns {1 if KEYS[1] swapped, 0 if not, ...}.
	// It is one EVALSHA for a whole batch where a pipeline of swapScript was one per
	// key: the server spent about 17 µs on each EVALSHA, against 1.4 µs for a GET.
	swapManyScript = redis.NewScript(valueOf + swapFn + `
local out = {}
for i = 1, #KEYS do
  local a = 5 * (i - 1)
  out[i] = swap(KEYS[i], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
end
return out
`)

	// KEYS[1] entry, KEYS[2] record to create, KEYS[3...] records to read; ARGV[1]
	// the record to create, ARGV[2] its PXAT or empty, ARGV[3] "1" to create only if
	// KEYS[1] holds no record (GetOrCreate: KEYS[2] is then not read either when it
	// does). Returns {entry record, 1 if created,
	// KEYS[2]'s record before the call (false when created: then it was absent or
	// unparsable), the records of KEYS[3...]}, false for a missing record; or an
	// error naming the first unparsable record of KEYS[3...], before anything is
	// created.
	//
	// KEYS[2] is nearly always absent (no lease): SET NX creates it without a read
	// first, and only when there is a record is it read and replaced if it cannot
	// be parsed. The entry and KEYS[3...] are read with one MGET. A miss is 2
	// calls in the script (MGET, SET), and a hit 1.
	//
	// Creating KEYS[2] publishes nothing: it is a lease record, and nobody waits for
	// a lease to be taken (store.Notifier: a record set, deleted or cleared, a lease
	// released). The lease is released by a script that publishes (SetAndDelete,
	// Swap, Delete). A PUBLISH was the third call of a miss's first script, and on a
	// Cluster it goes to every node.
	getAndCreateScript = redis.NewScript(valueOf + `
local ks = {KEYS[1]}
for i = 3, #KEYS do ks[i - 1] = KEYS[i] end
local got = redis.call('MGET', unpack(ks))
local out = {got[1], 0, false}
for i = 2, #got do
  local r = got[i]
  if r and not valueOf(r) then return redis.error_reply('CORRUPT ' .. (i - 1)) end
  out[i + 2] = r
end
if ARGV[3] == '1' and out[1] then return out end
local created
if ARGV[2] ~= '' then
  created = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PXAT', ARGV[2])
else
  created = redis.call('SET', KEYS[2], ARGV[1], 'NX')
end
if not created then
  out[3] = redis.call('GET', KEYS[2])
  if not valueOf(out[3]) then
    set(KEYS[2], ARGV[1], ARGV[2])
    created = true
  end
end
if created then out[2] = 1 end
return out
`)

	// KEYS[1] entry, KEYS[2] record to delete, KEYS[3...] records to read; ARGV[1]
	// the entry's record, ARGV[2] its PXAT or empty, ARGV[3] "1" if ARGV[4] is the
	// value KEYS[2] must hold to be deleted; ARGV[5] and ARGV[6] the channels of
	// KEYS[1] and KEYS[2]. Returns {1 if deleted, the records of KEYS[3...]}, false
	// for a missing record. KEYS[2...] are read with one MGET, before the delete; a
	// key of KEYS[3...] that is KEYS[2] reads as deleted when it was.
	setAndDeleteScript = redis.NewScript(valueOf + `
set(KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[5], 'v')
local got = redis.call('MGET', unpack(KEYS, 2))
local out = {0}
for i = 2, #got do out[i] = got[i] end
if ARGV[3] == '1' and valueOf(got[1]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
  if ARGV[6] ~= ARGV[5] then redis.call('PUBLISH', ARGV[6], 'v') end
  out[1] = 1
  for i = 3, #KEYS do
    if KEYS[i] == KEYS[2] then out[i - 1] = false end
  end
end
return out
`)

	// KEYS: for each of n writes, its entry and the record to delete; then na
	// records to read after every write; then the marks to swap after them. ARGV[1]
	// n, ARGV[2] na; then for each write the 6 values of setAndDeleteScript's ARGV
	// (record, PXAT, "1" to compare, the old value, the two channels); then for each
	// mark the 5 of swapScript's. Returns {1 if write i deleted its record, for each
	// write; the records read (false: missing); 1 if mark j swapped, for each mark}.
	//
	// Each write is setAndDeleteScript's for one key, without its read of the other
	// records: those are read once, after the last write (where setAndDeleteScript's
	// last call read them), so a record deleted by a write reads as missing.
	setAndDeleteManyScript = redis.NewScript(valueOf + swapFn + `
local n, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, n do
  local k, rk, a = KEYS[2 * i - 1], KEYS[2 * i], 2 + 6 * (i - 1)
  local ch, rch = ARGV[a + 5], ARGV[a + 6]
  set(k, ARGV[a + 1], ARGV[a + 2])
  redis.call('PUBLISH', ch, 'v')
  out[i] = 0
  if ARGV[a + 3] == '1' and valueOf(redis.call('GET', rk)) == ARGV[a + 4] then
    redis.call('DEL', rk)
    if rch ~= ch then redis.call('PUBLISH', rch, 'v') end
    out[i] = 1
  end
end
if na > 0 then
  local got = redis.call('MGET', unpack(KEYS, 2 * n + 1, 2 * n + na))
  for j = 1, na do out[n + j] = got[j] end
end
local a = 2 + 6 * n
for j = 2 * n + na + 1, #KEYS do
  out[#out + 1] = swap(KEYS[j], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
  a = a + 5
end
return out
`)

	// KEYS[1] entry; ARGV[1] 8-byte cutoff stamp, ARGV[2] channel, ARGV[3] and
	// ARGV[4] the 2-byte record heads (without and with an expiry). A record whose
	// stamp is below the cutoff, or that is not a record at all (garbage under the
	// prefix), is removed. Bytes are compared one by one: Lua numbers cannot hold
	// 64-bit stamps and string comparison follows locale.
	deleteBeforeScript = redis.NewScript(`
local h = redis.call('GETRANGE', KEYS[1], 0, 9)
if h == '' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = true
if #h == 10 and (string.sub(h, 1, 2) == ARGV[3] or string.sub(h, 1, 2) == ARGV[4]) then
  old = false
  local c = ARGV[1]
  for i = 1, 8 do
    local a, b = string.byte(h, i + 2), string.byte(c, i)
    if a ~= b then
      old = a < b
      break
    end
  end
end
if old then
  redis.call('UNLINK', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'v')
  return 1
end
return 0
`)
)
