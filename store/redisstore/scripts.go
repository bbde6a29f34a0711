package redisstore

import "github.com/redis/go-redis/v9"

// The scripts touch only KEYS[1] (and publish on a channel that shares its hash tag),
// so they run on Redis Cluster. Payloads published on a key's channel:
//
//	v          the entry changed (set, deleted, cleared)
//	l          the lease was released
//	t<ms>      the lease was acquired or renewed and expires in ms milliseconds
var (
	// KEYS[1] value key; ARGV[1] record, ARGV[2] channel, ARGV[3] the expiry in Unix
	// milliseconds (PXAT), or empty for none.
	setScript = redis.NewScript(`
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', ARGV[2], 'v')
return 1
`)

	// KEYS[1] value or lease key; ARGV[1] channel, ARGV[2] payload.
	delScript = redis.NewScript(`
local n = redis.call('UNLINK', KEYS[1])
if n > 0 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return n
`)

	// KEYS[1] value key; ARGV[1] 8-byte cutoff stamp, ARGV[2] channel, ARGV[3] and
	// ARGV[4] the 2-byte record heads (without and with an expiry). A record whose stamp is below the cutoff, or that is not a
	// record at all (garbage under the prefix), is removed. Bytes are compared one by
	// one: Lua numbers cannot hold 64-bit stamps and string comparison follows locale.
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

	// KEYS[1] lease key; ARGV[1] owner record, ARGV[2] ttl ms, ARGV[3] channel.
	// Returns 1, or {holder record, pttl} when held.
	acquireScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('PUBLISH', ARGV[3], 't' .. ARGV[2])
  return 1
end
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
`)

	// KEYS[1] lease key; ARGV[1] owner record, ARGV[2] ttl ms, ARGV[3] channel.
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PUBLISH', ARGV[3], 't' .. ARGV[2])
  return 1
end
return 0
`)

	// KEYS[1] lease key; ARGV[1] owner record, ARGV[2] channel.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'l')
  return 1
end
return 0
`)
)
