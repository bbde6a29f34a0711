// Package all registers every cachier store with store.Open, for programs (such as
// the cachier command) that take a store URL from their user:
//
//	import _ "github.com/cachier-go/cachier/store/all"
//
//	st, err := store.Open(ctx, "redis://localhost:6379/0")
//
// Importing it links every store's driver into the program. A program that needs one
// store should import that store's package instead, for its init alone.
//
// Schemes registered:
//
//	file://, file:///path                    filestore (the default store)
//	mem://                                   memstore (in the process only)
//	redis://, rediss://, redis+cluster://,
//	redis+sentinel:// (and rediss+...)       redisstore
//	memcache://, memcached://                memcachestore
//	postgres://, postgresql://, mysql://,
//	sqlite:                                  sqlstore (through sqlstore/sqlurl)
//	mongodb://, mongodb+srv://               mongostore
//	s3://                                    s3store
package all

import (
	_ "github.com/cachier-go/cachier/store/filestore"       // file
	_ "github.com/cachier-go/cachier/store/memcachestore"   // memcache, memcached
	_ "github.com/cachier-go/cachier/store/memstore"        // mem
	_ "github.com/cachier-go/cachier/store/mongostore"      // mongodb, mongodb+srv
	_ "github.com/cachier-go/cachier/store/redisstore"      // redis, rediss, redis+cluster, redis+sentinel
	_ "github.com/cachier-go/cachier/store/s3store"         // s3
	_ "github.com/cachier-go/cachier/store/sqlstore/sqlurl" // postgres, postgresql, mysql, sqlite
)
