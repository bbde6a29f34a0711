package redisstore

import "github.com/cachier-go/cachier/store"

var _ store.Expirer = (*driver)(nil)

// ExpiresNatively implements store.Expirer: Set gives an entry with ExpiresAt a PXAT
// on its key, so Redis drops it by itself (and Set without one takes it off).
func (s *driver) ExpiresNatively() bool { return true }
