package cachier

import (
	"fmt"
	"sync"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/filestore"
)

var defaultStore struct {
	once sync.Once
	st   store.Store
	err  error
}

// DefaultStore returns the store used by functions wrapped without WithStore (and
// without a store in SetDefaults): one filestore per process, in
// $XDG_CACHE_HOME/cachier, else ~/.cachier, opened on first use.
func DefaultStore() (store.Store, error) {
	defaultStore.once.Do(func() {
		st, err := filestore.New(nil)
		if err != nil {
			defaultStore.err = fmt.Errorf("cachier: open the default file store: %w; pass WithStore", err)
			return
		}
		defaultStore.st = store.Adapt(st)
	})
	return defaultStore.st, defaultStore.err
}
