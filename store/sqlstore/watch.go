package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachier-go/cachier/store"
)

// Listener receives PostgreSQL notifications on one dedicated connection. Package
// pgnotify implements it with pgx; this package cannot, because it imports no driver.
type Listener interface {
	// Listen subscribes conn to channel (LISTEN), calls ready once the subscription is
	// active, then calls deliver with the payload of each notification, in order,
	// until ctx is done or the connection fails, and returns why. The store discards
	// conn afterwards, so Listen need not UNLISTEN.
	Listen(ctx context.Context, conn *sql.Conn, channel string, ready func(), deliver func(payload string)) error
}

// listenerState is the store's one listening connection, started by the first Watch.
type listenerState struct {
	l         Listener
	startOnce sync.Once
	up        atomic.Bool
	readyOnce sync.Once
	ready     chan struct{} // closed the first time the listener is up
}

// listenWait bounds how long the first Watch waits for the listening connection
// before it falls back to polling.
const listenWait = 2 * time.Second

// hub fans received notifications, and the losses of the listening connection, out to
// this process's watchers.
type hub struct {
	n    atomic.Int64 // watchers, so that writes skip the lock when nobody watches
	mu   sync.Mutex
	byNS map[string]map[*watcher]struct{}
}

type watcher struct {
	key  store.Key     // an empty ID watches the whole namespace (WatchNamespace)
	kick chan struct{} // capacity 1: the channel Watch returned
	// origin, if not empty, is the writer id whose changes do not wake it
	// (WatchNamespace under store.WithOrigin).
	origin string
}

func (h *hub) init() { h.byNS = map[string]map[*watcher]struct{}{} }

func (h *hub) add(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.byNS[w.key.Namespace]
	if m == nil {
		m = map[*watcher]struct{}{}
		h.byNS[w.key.Namespace] = m
	}
	m[w] = struct{}{}
	h.n.Add(1)
}

func (h *hub) remove(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.byNS[w.key.Namespace]
	if _, ok := m[w]; !ok {
		return
	}
	delete(m, w)
	if len(m) == 0 {
		delete(h.byNS, w.key.Namespace)
	}
	h.n.Add(-1)
}

// kick wakes the watchers of k, or of k's whole namespace, but those that asked not
// to be woken by the changes of origin, the writer id of the change ("" for none).
func (h *hub) kick(k store.Key, whole bool, origin string) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.byNS[k.Namespace] {
		if origin != "" && w.origin == origin {
			continue
		}
		if whole || w.key.ID == k.ID || w.key.ID == "" {
			store.Wake(w.kick)
		}
	}
}

// kickAll wakes every watcher: notifications may have been lost.
func (h *hub) kickAll() {
	if h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.byNS {
		for w := range m {
			store.Wake(w.kick)
		}
	}
}

// goBackground runs f in a goroutine that Close waits for, unless the store is closed.
func (s *Store) goBackground(f func()) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgCtx.Err() != nil {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// listening starts the listener if needed and reports whether it is up, waiting a
// little for the first connection.
func (s *Store) listening(ctx context.Context) bool {
	ls := s.lis
	if ls == nil {
		return false
	}
	ls.startOnce.Do(func() { s.goBackground(s.runListener) })
	if ls.up.Load() {
		return true
	}
	t := time.NewTimer(listenWait)
	defer t.Stop()
	select {
	case <-ls.ready:
	case <-t.C:
	case <-ctx.Done():
	case <-s.bgCtx.Done():
	}
	return ls.up.Load()
}

// runListener keeps one connection listening on the store's channel until Close,
// reconnecting with backoff. Every connect and every loss wakes all watchers, since
// notifications sent while no connection listened are lost.
func (s *Store) runListener() {
	ls := s.lis
	ctx := s.bgCtx
	backoff := 10 * time.Millisecond
	for {
		conn, err := s.db.Conn(ctx)
		if err == nil {
			err = ls.l.Listen(ctx, conn, s.channel, func() {
				ls.up.Store(true)
				ls.readyOnce.Do(func() { close(ls.ready) })
				backoff = 10 * time.Millisecond
				s.hub.kickAll()
			}, s.deliver)
			// Never return a listening session to the pool.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			_ = conn.Close()
		}
		ls.up.Store(false)
		s.hub.kickAll()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("sqlstore: notification connection lost; watchers poll until it is back",
			"table", s.channel, "err", store.Redact(errString(err)), "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func errString(err error) string {
	if err == nil {
		return "listener returned"
	}
	return err.Error()
}

// deliver handles one notification payload.
func (s *Store) deliver(payload string) {
	if k, whole, origin, ok := parsePayload(payload); ok {
		s.hub.kick(k, whole, origin)
	}
}

// fingerprint is what a polling watcher compares: the row's stored_at, expires_at and
// size, and its value when it is small (a lease record).
type fingerprint struct {
	found   bool
	at, exp sql.NullInt64
	size    sql.NullInt64
	small   string
}

func (s *Store) fingerprint(ctx context.Context, k store.Key) (fingerprint, error) {
	return read(ctx, s, s.q.fingerprint, []any{k.Namespace, k.ID}, func(r *sql.Rows) (fingerprint, error) {
		var f fingerprint
		if !r.Next() {
			return f, nil
		}
		var small []byte
		f.found = true
		err := r.Scan(&f.at, &f.exp, &f.size, &small)
		f.small = string(small)
		return f, err
	})
}

// Watch implements store.Notifier: it signals when the row of k may have changed. On
// PostgreSQL with a Listener, the store's one listening connection wakes watchers
// within milliseconds of a commit: the notification is sent straight to the channel
// Watch returned. Otherwise each watcher polls the row, 1ms apart at first and
// doubling up to Options.PollInterval. The portable layer wakes watchers of changes
// made through it at once, and a waiter wakes itself when the lease it waits on
// expires: no timer here.
func (s *Store) Watch(ctx context.Context, k store.Key) (<-chan struct{}, func(), error) {
	if err := s.init(ctx); err != nil {
		return nil, nil, err
	}
	listen := s.listening(ctx)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	w := &watcher{key: k, kick: make(chan struct{}, 1)}
	if listen {
		ch, stop := s.hubWatch(ctx, w)
		return ch, stop, nil
	}
	base, err := s.fingerprint(ctx, k)
	if err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.bgCtx, cancel)
	if !s.goBackground(func() {
		defer stopOnClose()
		s.watchPolling(wctx, k, w.kick, base)
	}) {
		stopOnClose()
		cancel()
		return nil, nil, errClosed
	}
	return w.kick, cancel, nil
}

// WatchNamespace implements store.NamespaceNotifier on PostgreSQL with a Listener:
// every notification names the row that changed, so a watcher of a namespace costs
// no more than a watcher of a key. Without a listening connection up (another
// engine, no Listener, or the connection not back yet) it returns an error matching
// errors.ErrUnsupported: polling every row of a namespace is not worth it, and the
// caller has Watch. Under store.WithOrigin for ns, the changes tagged with its writer
// id do not wake the channel: they carry it in their payload (notifyArgs).
func (s *Store) WatchNamespace(ctx context.Context, ns string) (<-chan struct{}, func(), error) {
	if err := s.init(ctx); err != nil {
		return nil, nil, err
	}
	if !s.listening(ctx) {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("sqlstore: watch namespace %q: %w (no notification connection)", ns, errors.ErrUnsupported)
	}
	w := &watcher{key: store.Key{Namespace: ns}, kick: make(chan struct{}, 1), origin: store.Origin(ctx, ns)}
	ch, stop := s.hubWatch(ctx, w)
	return ch, stop, nil
}

// hubWatch adds w to the listener's watchers until stop is called or ctx is done.
func (s *Store) hubWatch(ctx context.Context, w *watcher) (<-chan struct{}, func()) {
	s.hub.add(w)
	var once sync.Once
	stop := func() { once.Do(func() { s.hub.remove(w) }) }
	stopWithCtx := context.AfterFunc(ctx, stop)
	return w.kick, func() { stopWithCtx(); stop() }
}

func (s *Store) watchPolling(ctx context.Context, k store.Key, out chan struct{}, base fingerprint) {
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f, err := s.fingerprint(ctx, k)
			if err == nil && f != base {
				store.Wake(out)
				base = f
				wait = time.Millisecond
			} else {
				wait = min(2*wait, s.poll)
			}
			t.Reset(wait)
		}
	}
}
