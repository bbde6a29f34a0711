package cachier

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/cachier-go/cachier/store"
)

// Store aliases (easy_cache's cache_alias): a function names the store it wants by
// an alias, and the program binds each alias to a store once, at start-up, in code
// (BindStore) or by environment ($CACHIER_STORE_<ALIAS> holding a store URL). Code
// that wraps functions then does not need to know where each kind of result lives.

// aliases is the registry of bound aliases.
var aliases struct {
	mu sync.Mutex
	m  map[string]store.Store
}

// aliasEnvPrefix starts the environment variables that bind aliases.
const aliasEnvPrefix = "CACHIER_STORE_"

// AliasEnv returns the environment variable that binds alias: CACHIER_STORE_
// followed by the alias in upper case ("reports" is $CACHIER_STORE_REPORTS).
func AliasEnv(alias string) string { return aliasEnvPrefix + strings.ToUpper(alias) }

// checkAlias reports a malformed alias: letters, digits and underscores, at most 64.
func checkAlias(alias string) error {
	if alias == "" || len(alias) > 64 {
		return fmt.Errorf("store alias %q: give 1 to 64 letters, digits or underscores", alias)
	}
	for _, r := range alias {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("store alias %q: %q is not allowed; use letters, digits and underscores", alias, r)
		}
	}
	return nil
}

// BindStore binds alias to st, for the functions wrapped with StoreAlias(alias).
// Bind every alias once, at start-up, before the functions that use it are wrapped:
// binding an alias a second time is an error, and so is binding one that
// $CACHIER_STORE_<ALIAS> already bound. Aliases are case-insensitive.
func BindStore(alias string, st store.Driver) error {
	if err := checkAlias(alias); err != nil {
		return fmt.Errorf("%w: BindStore: %w", ErrOption, err)
	}
	if st == nil {
		return fmt.Errorf("%w: BindStore(%q): nil store", ErrOption, alias)
	}
	key := strings.ToLower(alias)
	aliases.mu.Lock()
	defer aliases.mu.Unlock()
	if aliases.m[key] != nil {
		return fmt.Errorf("%w: BindStore: store alias %q is already bound; bind each alias once, at start-up", ErrOption, alias)
	}
	if aliases.m == nil {
		aliases.m = make(map[string]store.Store)
	}
	aliases.m[key] = store.Adapt(st)
	defaults.gen.Add(1) // functions that failed to resolve the alias resolve it again
	return nil
}

// resolveAlias returns the store bound to alias: by BindStore, else by opening the
// URL in $CACHIER_STORE_<ALIAS> (once per process; the URL's scheme must be
// registered, by importing the store's package or store/all).
func resolveAlias(alias string) (store.Store, error) {
	key := strings.ToLower(alias)
	aliases.mu.Lock()
	defer aliases.mu.Unlock()
	if st := aliases.m[key]; st != nil {
		return st, nil
	}
	env := AliasEnv(alias)
	raw := os.Getenv(env)
	if raw == "" {
		return nil, fmt.Errorf("store alias %q is not bound: call cachier.BindStore(%q, st) at start-up, before Wrap, or set $%s to a store URL", alias, alias, env)
	}
	st, err := store.Open(context.Background(), raw)
	if err != nil {
		return nil, fmt.Errorf("store alias %q: open $%s: %w", alias, env, err)
	}
	if aliases.m == nil {
		aliases.m = make(map[string]store.Store)
	}
	aliases.m[key] = st
	return st, nil
}

// StoreAlias makes the function keep its results in the store bound to alias (see
// BindStore and AliasEnv), instead of naming the store itself with WithStore. The
// alias is resolved when the function is wrapped: an alias bound neither in code nor
// by environment is an error then. Accepted by Wrap and SetDefaults.
func StoreAlias(alias string) Option {
	return opt("StoreAlias", inWrap|inDefaults, func(s *settings) error {
		if err := checkAlias(alias); err != nil {
			return err
		}
		st, err := resolveAlias(alias)
		if err != nil {
			return err
		}
		s.store = st
		return nil
	})
}
