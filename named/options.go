package named

import (
	"context"
	"fmt"
	"slices"

	"github.com/cachier-go/cachier"
)

// An Option configures one cache at Register. Options are not generic (Go could not
// infer a cache's key and value types at the call site); the hooks that carry those
// types, such as [Builder], infer them from their argument and are checked against
// the cache's types at Register, which returns an error matching [ErrOption] on a
// mismatch.
type Option struct {
	name  string
	apply func(*config) error
}

// String returns the option's name, for messages.
func (o Option) String() string { return o.name }

// config is the untyped configuration of one cache, checked at Register.
type config struct {
	parents    []string
	persistent bool
	rules      []Rule
	codec      cachier.Codec
	builder    any // func(context.Context) (map[K]V, error)
	loader     any // func(context.Context, string) (map[K]V, error)
	saver      any // func(context.Context, string, map[K]V) error
	deleter    func(context.Context, string) error
	validator  any // func(map[K]V) error
	beforeSave any // func(context.Context, string, map[K]V) (map[K]V, error)
	afterLoad  any // func(context.Context, string, map[K]V) (map[K]V, error)
}

func defaultConfig() config {
	return config{persistent: true, rules: DefaultRules, codec: cachier.CBOR}
}

// DependsOn declares the cache's parents by name. Invalidating or clearing a parent
// invalidates the cache, transitively, in every process that declares the same
// dependency. A parent need not be registered yet (or ever, in this process); a
// dependency that would close a cycle is an error matching [ErrCycle] at the Register
// that would close it.
func DependsOn(parents ...string) Option {
	return Option{"DependsOn", func(c *config) error {
		for _, p := range parents {
			if err := checkName(p); err != nil {
				return fmt.Errorf("%w: DependsOn: %w", ErrOption, err)
			}
		}
		c.parents = append(c.parents, parents...)
		return nil
	}}
}

// Persistent says whether the cache is saved and loaded (the default) or lives in
// memory only. An in-memory cache still takes part in invalidation: it is emptied when
// it or a parent is invalidated, here or in another process, and refilled by its
// [Builder] if it has one.
func Persistent(on bool) Option {
	return Option{"Persistent", func(c *config) error { c.persistent = on; return nil }}
}

// AutoSync replaces the cache's autosync rules ([DefaultRules] by default). With no
// rules the cache is saved only by [Cache.Save], [Manager.Save] and [Manager.Close].
func AutoSync(rules ...Rule) Option {
	return Option{"AutoSync", func(c *config) error {
		if err := checkRules(rules); err != nil {
			return err
		}
		c.rules = slices.Clone(rules)
		return nil
	}}
}

// WithCodec sets how the map is encoded in the store (default [cachier.CBOR]). The key
// and value types must suit the codec: [cachier.JSON] needs string, integer or
// encoding.TextMarshaler keys.
func WithCodec(codec cachier.Codec) Option {
	return Option{"WithCodec", func(c *config) error {
		if codec == nil {
			return fmt.Errorf("%w: WithCodec(nil)", ErrOption)
		}
		c.codec = codec
		return nil
	}}
}

// Builder fills a missing cache: it runs when the cache is first used (or used after
// an invalidation) and nothing valid was loaded. Its result is the cache's contents,
// counted as one unsaved change, so it is saved by the autosync rules or by Close.
// A failing Builder is logged and counted; the cache starts empty, and [Cache.Load]
// tries again. The Builder may read other caches (its parents, typically) but not its
// own cache, and must not invalidate caches.
func Builder[K comparable, V any](build func(ctx context.Context) (map[K]V, error)) Option {
	return Option{"Builder", func(c *config) error {
		if build == nil {
			return fmt.Errorf("%w: Builder(nil)", ErrOption)
		}
		c.builder = build
		return nil
	}}
}

// Loader replaces reading the cache from the store: load returns the saved map for
// the cache name, or (nil, nil) or an error matching store.ErrNotFound or
// fs.ErrNotExist when there is none. Other errors are logged and counted, and the
// cache is treated as missing. The store still records, for each save through a
// custom [Saver], the version counters it was saved under, so a map saved before an
// invalidation is not loaded again; a map the Loader finds that was never saved
// through this package is trusted.
func Loader[K comparable, V any](load func(ctx context.Context, name string) (map[K]V, error)) Option {
	return Option{"Loader", func(c *config) error {
		if load == nil {
			return fmt.Errorf("%w: Loader(nil)", ErrOption)
		}
		c.loader = load
		return nil
	}}
}

// Saver replaces writing the cache to the store: save receives the cache name and a
// copy of its contents, which it may keep.
func Saver[K comparable, V any](save func(ctx context.Context, name string, m map[K]V) error) Option {
	return Option{"Saver", func(c *config) error {
		if save == nil {
			return fmt.Errorf("%w: Saver(nil)", ErrOption)
		}
		c.saver = save
		return nil
	}}
}

// Deleter is called with the cache name when this process invalidates or clears the
// cache or one of its parents, to delete what a custom [Saver] saved (cacheman's
// delete hook). Its errors are returned by the invalidating call.
func Deleter(del func(ctx context.Context, name string) error) Option {
	return Option{"Deleter", func(c *config) error {
		if del == nil {
			return fmt.Errorf("%w: Deleter(nil)", ErrOption)
		}
		c.deleter = del
		return nil
	}}
}

// Validator checks a loaded map (not a built one). A map it rejects is discarded,
// logged and counted; the [Builder], if any, then fills the cache.
func Validator[K comparable, V any](validate func(m map[K]V) error) Option {
	return Option{"Validator", func(c *config) error {
		if validate == nil {
			return fmt.Errorf("%w: Validator(nil)", ErrOption)
		}
		c.validator = validate
		return nil
	}}
}

// hook converts an untyped hook to its typed form, or reports a type mismatch.
func hook[F any](name string, h any) (F, error) {
	var f F
	if h == nil {
		return f, nil
	}
	f, ok := h.(F)
	if !ok {
		return f, fmt.Errorf("%w: %s is a %T, the cache needs a %T", ErrOption, name, h, f)
	}
	return f, nil
}

// BeforeSave runs fn on a copy of the map before every save, whether the store or a
// Saver keeps it (cacheman's pre-processor): what fn returns is what is saved, and the
// in-memory map is left as it is. Use it to drop or trim entries, or to encrypt or
// redact values, without replacing the whole Saver. An error fails the save (the
// changes stay unsaved). K and V must be the cache's types.
func BeforeSave[K comparable, V any](fn func(ctx context.Context, name string, m map[K]V) (map[K]V, error)) Option {
	return Option{"BeforeSave", func(c *config) error {
		if fn == nil {
			return fmt.Errorf("%w: BeforeSave: nil function", ErrOption)
		}
		c.beforeSave = fn
		return nil
	}}
}

// AfterLoad runs fn on every map loaded from the store or the Loader, before the
// Validator (cacheman's post-processor): what fn returns becomes the cache's map. It
// is the counterpart of [BeforeSave]. An error makes the saved map count as missing
// (logged and counted in Stats.LoadErrors): the cache then starts from its Builder,
// or empty. K and V must be the cache's types.
func AfterLoad[K comparable, V any](fn func(ctx context.Context, name string, m map[K]V) (map[K]V, error)) Option {
	return Option{"AfterLoad", func(c *config) error {
		if fn == nil {
			return fmt.Errorf("%w: AfterLoad: nil function", ErrOption)
		}
		c.afterLoad = fn
		return nil
	}}
}
