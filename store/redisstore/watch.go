package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cachier-go/cachier/store"
)

// Receive loop tuning.
const (
	idleTimeout = 30 * time.Second // no message for this long: ping the connection
	minBackoff  = 50 * time.Millisecond
	maxBackoff  = 2 * time.Second
	unsubWait   = 5 * time.Second
	pingPrefix  = "cachier-redisstore:"
)

// Watch implements store.Notifier: the channel receives a value when k's record is
// set, swapped, deleted or cleared. The entry and the lease record of one key share a
// pub/sub channel, so the portable layer's two watches of a key (the entry and its
// lease) are one subscription. Watch returns once the server has confirmed the
// subscription, so no change after it returns is missed. Lease expiry is not
// notified: the portable layer's waiters know the holder's expiry.
//
// All watches of a Store share one pub/sub connection, subscribed once per watched
// channel. After the connection is lost and re-established, every watcher is woken
// once, because changes made meanwhile were not heard.
func (s *driver) Watch(ctx context.Context, k store.Key) (<-chan struct{}, func(), error) {
	h, err := s.getHub()
	if err != nil {
		return nil, nil, err
	}
	return h.watch(ctx, k)
}

func (s *driver) getHub() (*hub, error) {
	s.hubMu.Lock()
	defer s.hubMu.Unlock()
	if s.closed {
		return nil, errors.New("redisstore: store is closed")
	}
	if s.hub == nil {
		s.hub = newHub(s)
	}
	return s.hub, nil
}

// hub multiplexes every watched key over one redis.PubSub.
type hub struct {
	s      *driver
	ps     *redis.PubSub
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	done   chan struct{} // closed when the receive loop ends

	mu      sync.Mutex
	chans   map[string]*channel // by channel name
	seq     uint64              // of the last PING written
	pending map[*channel]uint64 // subscribed, waiting for a PONG of at least this seq
	resync  bool                // the connection failed: wake everyone at the next PONG
	idle    uint64              // seq of the unanswered idle PING, or 0
}

// channel is one subscribed key and its watchers.
type channel struct {
	name     string
	watchers map[*watcher]struct{}
	ready    chan struct{} // closed when the server has confirmed the subscription
}

type watcher struct {
	c    chan struct{}
	once sync.Once
}

func newHub(s *driver) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{
		s:       s,
		ps:      s.client.Subscribe(ctx), // no channels yet: connects lazily
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		chans:   map[string]*channel{},
		pending: map[*channel]uint64{},
	}
	go h.loop()
	return h
}

func (h *hub) watch(ctx context.Context, k store.Key) (<-chan struct{}, func(), error) {
	name := h.s.keys.channel(k)
	w := &watcher{c: make(chan struct{}, 1)}

	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		return nil, nil, errors.New("redisstore: store is closed")
	}
	ch := h.chans[name]
	if ch == nil {
		ch = &channel{name: name, watchers: map[*watcher]struct{}{}, ready: make(chan struct{})}
		h.chans[name] = ch
		ch.watchers[w] = struct{}{}
		// Written under h.mu so that SUBSCRIBE, UNSUBSCRIBE and PING reach the
		// connection in the order the map changes.
		err := h.ps.Subscribe(ctx, name)
		if err == nil {
			err = h.pingLocked(ctx)
		}
		if err != nil {
			h.removeLocked(w, ch)
			h.mu.Unlock()
			return nil, nil, fmt.Errorf("redisstore: watch %s: %w", k, err)
		}
		h.pending[ch] = h.seq
	} else {
		ch.watchers[w] = struct{}{}
	}
	h.mu.Unlock()

	stop := func() {
		w.once.Do(func() {
			h.mu.Lock()
			h.removeLocked(w, ch)
			h.mu.Unlock()
		})
	}
	select {
	case <-ch.ready:
	case <-ctx.Done():
		stop()
		return nil, nil, ctx.Err()
	case <-h.ctx.Done():
		stop()
		return nil, nil, errors.New("redisstore: store is closed")
	}
	unregister := context.AfterFunc(ctx, stop)
	return w.c, func() { unregister(); stop() }, nil
}

// pingLocked writes a PING whose PONG proves that every command written before it
// has been processed.
func (h *hub) pingLocked(ctx context.Context) error {
	h.seq++
	return h.ps.Ping(ctx, pingPrefix+strconv.FormatUint(h.seq, 10))
}

// removeLocked drops w, and unsubscribes ch when it was the last watcher.
func (h *hub) removeLocked(w *watcher, ch *channel) {
	delete(ch.watchers, w)
	if len(ch.watchers) > 0 || h.chans[ch.name] != ch {
		return
	}
	delete(h.chans, ch.name)
	delete(h.pending, ch)
	if h.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, unsubWait)
	defer cancel()
	if err := h.ps.Unsubscribe(ctx, ch.name); err != nil {
		// The connection is broken; it reconnects without this channel.
		h.s.log.Debug("redisstore: unsubscribe", "channel", ch.name, "err", err)
	}
}

func (w *watcher) wake() { store.Wake(w.c) }

func (ch *channel) wakeLocked() {
	for w := range ch.watchers {
		w.wake()
	}
}

// loop receives messages until close.
func (h *hub) loop() {
	defer close(h.done)
	backoff := minBackoff
	for {
		h.mu.Lock()
		ps := h.ps
		h.mu.Unlock()
		msg, err := ps.ReceiveTimeout(h.ctx, idleTimeout)
		if h.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				h.idlePing()
				continue
			}
			h.mu.Lock()
			if !h.resync {
				h.s.log.Warn("redisstore: notifier connection lost; reconnecting", "err", store.Redact(err.Error()))
			}
			h.resync = true
			h.mu.Unlock()
			select {
			case <-time.After(backoff):
			case <-h.ctx.Done():
				return
			}
			backoff = min(2*backoff, maxBackoff)
			// Reconnects (resubscribing every channel) and proves it with a PONG.
			h.mu.Lock()
			_ = h.pingLocked(h.ctx)
			h.mu.Unlock()
			continue
		}
		backoff = minBackoff
		switch m := msg.(type) {
		case *redis.Message:
			h.message(m.Channel)
		case *redis.Pong:
			h.pong(m.Payload)
		}
	}
}

// idlePing handles a quiet connection: a PING checks it (a failed write
// reconnects); if the PING of the previous quiet period was never answered, the
// connection is half-open, and a new subscription replaces it.
func (h *hub) idlePing() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.idle != 0 {
		h.s.log.Warn("redisstore: notifier connection unresponsive; reconnecting")
		names := make([]string, 0, len(h.chans))
		for name := range h.chans {
			names = append(names, name)
		}
		old := h.ps
		h.ps = h.s.client.Subscribe(h.ctx, names...)
		_ = old.Close()
		h.resync = true
	}
	_ = h.pingLocked(h.ctx)
	h.idle = h.seq
}

// message wakes the watchers of a channel; every payload ("v") means a change.
func (h *hub) message(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.chans[name]; ch != nil {
		ch.wakeLocked()
	}
}

func (h *hub) pong(payload string) {
	seqStr, ok := strings.CutPrefix(payload, pingPrefix)
	if !ok {
		return
	}
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.idle != 0 && seq >= h.idle {
		h.idle = 0
	}
	for ch, s := range h.pending {
		if s <= seq {
			delete(h.pending, ch)
			close(ch.ready)
		}
	}
	if h.resync {
		// Reconnected: messages sent meanwhile are lost. Wake everyone.
		h.resync = false
		h.s.log.Info("redisstore: notifier reconnected")
		for _, ch := range h.chans {
			ch.wakeLocked()
		}
	}
}

// close ends the subscription and the receive loop.
func (h *hub) close() {
	h.mu.Lock()
	h.cancel()
	ps := h.ps
	h.mu.Unlock()
	_ = ps.Close()
	<-h.done
}
