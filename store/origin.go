package store

import "context"

// originKey is the context key of WithOrigin.
type originKey struct{}

// origin is what WithOrigin attaches: the writer id of the changes of namespace ns.
type origin struct{ ns, id string }

// WithOrigin returns a context under which changes of records of namespace ns (not its
// lease records, not other namespaces) are tagged with the writer id in the
// notifications that name them (a [NamespaceNotifier] driver that can: PostgreSQL),
// and a [NamespaceNotifier.WatchNamespace] of ns started with it is not woken by the
// changes tagged with id. A writer that already reflects its own changes (cachier's
// local tier, which keeps the values it wrote) so learns of every change but its own:
// each other writer's change is notified on its own, untagged or under another id.
// Drivers that cannot tell writers apart ignore it: their watchers are woken by every
// change, which only costs misses. An empty id attaches nothing.
func WithOrigin(ctx context.Context, ns, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, originKey{}, origin{ns, id})
}

// Origin returns the writer id that WithOrigin attached to ctx for namespace ns, or "".
func Origin(ctx context.Context, ns string) string {
	if o, ok := ctx.Value(originKey{}).(origin); ok && o.ns == ns {
		return o.id
	}
	return ""
}
