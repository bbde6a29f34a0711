package memcachestore

import (
	"math"
	"time"
)

// ExpiresNatively implements store.Expirer: an entry with ExpiresAt is stored with a
// memcached expiration, so the server drops it by itself.
func (s *Store) ExpiresNatively() bool { return true }

// entryExpiration returns memcached's expiration for an entry that expires at exp, as
// seen at now: 0 (never) for a zero exp, whole seconds rounded up (plus one, so that
// the item outlives the record's precise expiry) within memcached's 30 days, an
// absolute Unix time beyond them, and -1 (expired at once) for an exp already past.
func entryExpiration(exp, now time.Time) int32 {
	if exp.IsZero() {
		return 0
	}
	d := exp.Sub(now)
	if d <= 0 {
		return -1
	}
	secs := int64(math.Ceil(d.Seconds())) + 1
	if secs <= maxRelativeExpiration {
		return int32(secs)
	}
	return int32(min(exp.Unix()+1, math.MaxInt32))
}
