package cachier

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cachier-go/cachier/internal/envelope"
	"github.com/cachier-go/cachier/store"
)

// ErrCached is matched (errors.Is) by every error that a Call returns from a
// remembered failure (CacheErrors, CacheNotFound) rather than from running fn.
var ErrCached = errors.New("cachier: remembered error")

// CachedError is an error fn returned earlier, remembered by CacheErrors or
// CacheNotFound and returned again without running fn, in this process or any other
// sharing the store. It matches ErrCached, and the sentinel registered with
// RegisterError that fn's error matched, if any: errors.Is(err, ErrNotFound) holds for
// a remembered ErrNotFound. It never carries a value.
type CachedError struct {
	// Message is the text of fn's error.
	Message string
	// NotFound reports a "not found" answer remembered by CacheNotFound.
	NotFound bool
	// StoredAt is when fn returned the error.
	StoredAt time.Time

	sentinel error // the registered sentinel fn's error matched, or nil
}

func (e *CachedError) Error() string { return e.Message }

// Unwrap returns the registered sentinel fn's error matched (if any) and ErrCached.
func (e *CachedError) Unwrap() []error {
	if e.sentinel != nil {
		return []error{e.sentinel, ErrCached}
	}
	return []error{ErrCached}
}

// sentinels are the errors registered with RegisterError, by message.
var sentinels struct {
	mu     sync.RWMutex
	byText map[string]error
}

// RegisterError registers sentinel errors (such as sql.ErrNoRows or your own
// ErrNotFound) that a remembered error keeps: a CachedError read back, in any process
// that registered the same sentinels, matches errors.Is(err, sentinel) when fn's error
// did. A sentinel is known across processes by its message, so two registered
// sentinels must differ in their messages. Register them at init, in every program
// that shares the store.
func RegisterError(errs ...error) error {
	sentinels.mu.Lock()
	defer sentinels.mu.Unlock()
	if sentinels.byText == nil {
		sentinels.byText = map[string]error{}
	}
	for _, err := range errs {
		if err == nil {
			return fmt.Errorf("%w: RegisterError(nil); pass the sentinel errors to keep", ErrOption)
		}
		text := err.Error()
		if old, ok := sentinels.byText[text]; ok && old != err {
			return fmt.Errorf("%w: RegisterError: another error with the message %q is registered; sentinels are told apart by their messages", ErrOption, text)
		}
		sentinels.byText[text] = err
	}
	return nil
}

// sentinelOf returns the registered sentinel err matches, if any.
func sentinelOf(err error) error {
	sentinels.mu.RLock()
	defer sentinels.mu.RUnlock()
	for _, s := range sentinels.byText {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// errRule is one CacheErrors or CacheNotFound option.
type errRule struct {
	match    func(error) bool
	ttl      time.Duration
	notFound bool
}

// CacheErrors remembers the errors of fn that match reports true for, for ttl, in
// the store: until then a Call with the same argument, in any process sharing the
// store, returns a *CachedError (matching ErrCached and the registered sentinel, see
// RegisterError) without running fn. bkt caches failures by default; here it is
// opt-in. Off by default: errors are returned and never stored. A remembered error
// is never served stale (NextTime), and a failed background refresh never replaces a
// stale value with one.
func CacheErrors(match func(error) bool, ttl time.Duration) Option {
	return errOption("CacheErrors", match, ttl, false)
}

// CacheNotFound remembers, for ttl, that fn answered "not found" for an argument:
// an error match reports true for (such as errors.Is(err, ErrNotFound)). Calls until
// then return a *CachedError with NotFound set, matching the registered sentinel,
// without running fn (sturdyc's missing-record storage). Use it beside CacheErrors to
// keep "not found" for longer than failures.
func CacheNotFound(match func(error) bool, ttl time.Duration) Option {
	return errOption("CacheNotFound", match, ttl, true)
}

func errOption(name string, match func(error) bool, ttl time.Duration, notFound bool) Option {
	return opt(name, everywhere, func(s *settings) error {
		switch {
		case match == nil:
			return errors.New("nil match function; pass one that reports which errors to remember")
		case ttl <= 0:
			return fmt.Errorf("TTL %v is not positive; omit %s to remember no errors", ttl, name)
		}
		// A copy: settings are copied per call, and must not share a backing array.
		s.errRules = append(slices.Clip(s.errRules), errRule{match: match, ttl: ttl, notFound: notFound})
		return nil
	})
}

// errRuleFor returns the rule that remembers err, if any; CacheNotFound rules first.
func (s *settings) errRuleFor(err error) *errRule {
	for _, nf := range []bool{true, false} {
		for i := range s.errRules {
			if r := &s.errRules[i]; r.notFound == nf && r.match(err) {
				return r
			}
		}
	}
	return nil
}

// Failure records: kind byte, then uvarint-prefixed sentinel message and error message.
const (
	failError    = 1
	failNotFound = 2
	maxFailText  = 64 << 10 // a longer message is cut: it is for humans
)

func encodeFailure(notFound bool, sentinel, msg string) []byte {
	if len(msg) > maxFailText {
		msg = msg[:maxFailText]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	kind := byte(failError)
	if notFound {
		kind = failNotFound
	}
	b := make([]byte, 0, 1+2*binary.MaxVarintLen32+len(sentinel)+len(msg))
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(sentinel)))
	b = append(b, sentinel...)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	return append(b, msg...)
}

var errBadFailure = errors.New("bad error record")

// decodeFailure reads a failure record. It never panics, whatever the bytes.
func decodeFailure(b []byte) (ce *CachedError, sentinel string, err error) {
	if len(b) < 1 || (b[0] != failError && b[0] != failNotFound) {
		return nil, "", errBadFailure
	}
	ce = &CachedError{NotFound: b[0] == failNotFound}
	rest := b[1:]
	text := func() (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > maxFailText || uint64(len(rest)-k) < n {
			return "", false
		}
		s := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return s, utf8.ValidString(s)
	}
	var ok bool
	if sentinel, ok = text(); !ok {
		return nil, "", errBadFailure
	}
	if ce.Message, ok = text(); !ok || len(rest) != 0 {
		return nil, "", errBadFailure
	}
	return ce, sentinel, nil
}

// failedRecord is what decode returns for a remembered error.
type failedRecord struct{ err *CachedError }

func (r *failedRecord) Error() string { return "a remembered error, not a value" }

// openFailure turns a failure record's payload into the error it remembers.
func openFailure(payload []byte) error {
	ce, sentinel, err := decodeFailure(payload)
	if err != nil {
		return fmt.Errorf("%w: %w", envelope.ErrCorrupt, err)
	}
	if sentinel != "" {
		sentinels.mu.RLock()
		ce.sentinel = sentinels.byText[sentinel]
		sentinels.mu.RUnlock()
	}
	return &failedRecord{err: ce}
}

// saveFailure remembers fn's error err for k under rule r. Store errors are logged and
// counted, never returned: the caller gets fn's error either way.
func (f *Func[A, R]) saveFailure(ctx context.Context, s *settings, k store.Key, err error, r *errRule, before []envelope.Dep) {
	var name string
	if st := sentinelOf(err); st != nil {
		name = st.Error()
	}
	now := s.clock.Now()
	e := store.Entry{
		Value:     envelope.Seal(envelope.Raw, envelope.Meta{Flags: envelope.Failed, TTL: r.ttl, Deps: before}, encodeFailure(r.notFound, name, err.Error())),
		StoredAt:  now,
		ExpiresAt: now.Add(r.ttl),
	}
	opCtx, cancel := context.WithTimeout(ctx, s.storeTimeout)
	serr := s.store.Set(opCtx, k, e)
	cancel()
	_ = f.stored(ctx, s, k, e, serr)
	if serr == nil && s.verbose {
		f.trace(s, "cachier: remembered the function's error", "key", k.String(), "ttl", r.ttl, "not_found", r.notFound)
	}
}

// failureAnswers reports whether the remembered error h holds may answer a call now:
// younger than its TTL (and MaxAge), and not expired.
func (f *Func[A, R]) failureAnswers(s *settings, h *found[R]) bool {
	if h.failed == nil {
		return false
	}
	now := s.clock.Now()
	limit := s.effectiveLimit(h.ttl)
	return !s.expired(&h.foundTimes, now) && limit > 0 && now.Sub(h.storedAt) < limit
}
