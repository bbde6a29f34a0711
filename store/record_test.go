package store

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/cachier-go/cachier/clock"
)

func TestLeaseRecordRoundTrip(t *testing.T) {
	k := Key{Namespace: "ns", ID: "id"}
	l := Lease{Key: k, Owner: Owner{Host: "h\u00e9", PID: 42, Token: "tok"}, ExpiresAt: time.Unix(1700000000, 123456789)}
	got, err := decodeLease(k, encodeLease(l))
	if err != nil || got.Owner != l.Owner || !got.ExpiresAt.Equal(l.ExpiresAt) || got.Key != k {
		t.Fatalf("decodeLease(encodeLease(%+v)) = %+v, %v", l, got, err)
	}
	for _, bad := range [][]byte{nil, []byte("cL1"), []byte("xx"), append(encodeLease(l), 0)} {
		if _, err := decodeLease(k, bad); !errors.Is(err, errBadRecord) {
			t.Errorf("decodeLease(%q) = %v, want errBadRecord", bad, err)
		}
	}
}

// FuzzDecodeLease: no bytes read from a store make the decoder panic, and what it
// accepts survives a round trip.
func FuzzDecodeLease(f *testing.F) {
	f.Add(encodeLease(Lease{Owner: Owner{Host: "h", PID: 1, Token: "t"}, ExpiresAt: time.Unix(1, 0)}))
	f.Add([]byte("cL1\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k := Key{Namespace: "ns", ID: "id"}
		l, err := decodeLease(k, b)
		if err != nil {
			return
		}
		again, err := decodeLease(k, encodeLease(l))
		if err != nil || again.Owner != l.Owner || !again.ExpiresAt.Equal(l.ExpiresAt) {
			t.Fatalf("decode(%q) = %+v does not survive a round trip: %+v, %v", b, l, again, err)
		}
	})
}

func FuzzDecodeCounter(f *testing.F) {
	f.Add(encodeCounter(7))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeCounter("c", b)
		if err == nil && !bytes.Equal(encodeCounter(v), b) {
			t.Fatalf("decodeCounter(%q) = %d", b, v)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeCounter(%q): %v does not match ErrCorrupt", b, err)
		}
	})
}

// memDriver is the smallest driver with Swap, inside the package.
type memDriver struct{ m map[Key]Entry }

func (d *memDriver) Get(_ context.Context, k Key) (Entry, error) {
	e, ok := d.m[k]
	if !ok {
		return Entry{}, ErrNotFound
	}
	return e, nil
}
func (d *memDriver) Set(_ context.Context, k Key, e Entry) error { d.m[k] = e; return nil }
func (d *memDriver) Delete(_ context.Context, k Key) error       { delete(d.m, k); return nil }
func (d *memDriver) Close() error                                { return nil }

type swapDriver struct{ memDriver }

func (d *swapDriver) Swap(_ context.Context, k Key, old []byte, next *Entry) (bool, error) {
	cur, ok := d.m[k]
	if ok != (old != nil) || (ok && !bytes.Equal(cur.Value, old)) {
		return false, nil
	}
	if next == nil {
		delete(d.m, k)
	} else {
		d.m[k] = *next
	}
	return true, nil
}

// TestLeaseRule is the lease decision by the injected clock, over Swap and over the
// process-local fallback: held until the instant of expiry, renewed by re-acquiring
// with the same token, taken over at expiry, lost to the old holder after a takeover.
func TestLeaseRule(t *testing.T) {
	for name, d := range map[string]Driver{
		"local": &memDriver{m: map[Key]Entry{}},
		"swap":  &swapDriver{memDriver{m: map[Key]Entry{}}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
			s := Adapt(d, WithClock(clk))
			k := Key{Namespace: "ns", ID: "k"}
			a := Owner{Host: "h", PID: 1, Token: "a"}
			b := Owner{Host: "h", PID: 2, Token: "b"}
			l, err := s.Acquire(ctx, k, a, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if want := clk.Now().Add(time.Minute); !l.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %s, want %s", l.ExpiresAt, want)
			}
			clk.Advance(59 * time.Second)
			if _, err := s.Acquire(ctx, k, b, time.Minute); !errors.Is(err, ErrLeaseHeld) {
				t.Fatalf("Acquire before expiry: %v, want ErrLeaseHeld", err)
			}
			if _, err := s.Acquire(ctx, k, a, time.Minute); err != nil {
				t.Fatalf("Acquire by the holder: %v", err)
			}
			clk.Advance(59 * time.Second)
			if _, err := s.Acquire(ctx, k, b, time.Minute); !errors.Is(err, ErrLeaseHeld) {
				t.Fatalf("Acquire before the renewed expiry: %v, want ErrLeaseHeld", err)
			}
			clk.Advance(time.Second)
			if _, err := s.Acquire(ctx, k, b, time.Minute); err != nil {
				t.Fatalf("Acquire at expiry: %v", err)
			}
			if _, err := s.Renew(ctx, l, time.Minute); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("Renew after takeover: %v, want ErrLeaseLost", err)
			}
			if _, err := s.Acquire(ctx, Key{Namespace: "ns", ID: "k2"}, a, 0); err == nil {
				t.Error("Acquire with ttl 0 succeeded, want an error")
			}
		})
	}
}

// TestTakeoverIsCompareAndSwap: two callers that both read the same expired record
// cannot both take it over; the second swap fails against the first one's record.
func TestTakeoverIsCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Unix(1000, 0))
	d := &swapDriver{memDriver{m: map[Key]Entry{}}}
	p := Adapt(d, WithClock(clk)).(*portable)
	k := Key{Namespace: "ns", ID: "k"}
	dead, err := p.Acquire(ctx, k, Owner{Token: "dead"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = dead
	clk.Advance(2 * time.Second)
	cur, found, err := p.readRecord(ctx, leaseKey(k))
	if err != nil || !found {
		t.Fatal(found, err)
	}
	// Both read cur; the first swaps.
	if _, taken, err := p.swapLease(ctx, k, leaseKey(k), cur, true, Owner{Token: "x"}, time.Minute); !taken || err != nil {
		t.Fatalf("first takeover: %v, %v", taken, err)
	}
	if _, taken, err := p.swapLease(ctx, k, leaseKey(k), cur, true, Owner{Token: "y"}, time.Minute); taken || err != nil {
		t.Fatalf("second takeover of the same dead record: taken=%v, %v; want false, nil", taken, err)
	}
}

func TestEntryRecord(t *testing.T) {
	for _, e := range []Entry{
		{},
		{Value: []byte("v"), StoredAt: time.Unix(1, 2)},
		{StoredAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), ExpiresAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		{Value: bytes.Repeat([]byte{0, 0xff}, 300), StoredAt: time.Unix(-5, 3), ExpiresAt: time.Unix(60, 7)},
	} {
		for _, tag := range [][]byte{nil, []byte("tag"), bytes.Repeat([]byte("t"), 200)} {
			b := AppendRecord([]byte("pre"), e, tag)[3:]
			if len(b) != RecordSize(len(e.Value), tag, !e.ExpiresAt.IsZero()) {
				t.Errorf("RecordSize = %d; the record has %d bytes", RecordSize(len(e.Value), tag, !e.ExpiresAt.IsZero()), len(b))
			}
			got, gtag, err := DecodeRecord(b)
			if err != nil || !bytes.Equal(got.Value, e.Value) || !got.StoredAt.Equal(e.StoredAt) ||
				!got.ExpiresAt.Equal(e.ExpiresAt) || !bytes.Equal(gtag, tag) {
				t.Errorf("DecodeRecord(AppendRecord(%+v, %q)) = %+v, %q, %v", e, tag, got, gtag, err)
			}
		}
	}
	good := AppendRecord(nil, Entry{Value: []byte("v"), StoredAt: time.Unix(1, 2), ExpiresAt: time.Unix(3, 4)}, []byte("tag"))
	for name, b := range map[string][]byte{
		"empty": {}, "short": good[:16], "magic": append([]byte("cX1"), good[3:]...),
		"flags":       append(append([]byte("cE1"), 0x82), good[4:]...),
		"long tag":    append(bytes.Clone(good[:28]), 0x7f, 'x'),
		"old s3":      []byte("cS3E\x01\x00\x00\x00 and some more bytes of header"),
		"old memc":    []byte("cmE1 and some more bytes of header"),
		"zero exp":    append(append(bytes.Clone(good[:16]), AppendRecord(nil, Entry{}, nil)[4:16]...), good[28:]...),
		"bad nanos":   append(append(bytes.Clone(good[:12]), 0xff, 0xff, 0xff, 0xff), good[16:]...),
		"wide varint": append(append(bytes.Clone(good[:28]), 0x83, 0x00), "tag"...),
	} {
		if _, _, err := DecodeRecord(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: DecodeRecord = %v; want ErrCorrupt", name, err)
		}
	}
}

// FuzzDecodeRecord checks that the entry record decoder never panics and that what it
// accepts re-encodes to the same bytes: no second reading of a record.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(AppendRecord(nil, Entry{Value: []byte("v"), StoredAt: time.Unix(1, 2)}, nil))
	f.Add(AppendRecord(nil, Entry{Value: []byte("v"), ExpiresAt: time.Unix(1, 2)}, []byte("tag")))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, tag, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if again := AppendRecord(nil, e, tag); !bytes.Equal(again, b) {
			t.Fatalf("DecodeRecord accepted %x, which re-encodes as %x", b, again)
		}
	})
}

// UnixNano clamps times beyond int64 nanoseconds and never returns math.MinInt64,
// which drivers keep for the zero time.
func TestUnixNano(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(12, 34), 12e9 + 34},
		{time.Unix(0, math.MinInt64+1), math.MinInt64 + 1},
		{time.Unix(0, math.MinInt64), math.MinInt64 + 1},
		{time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), math.MinInt64 + 1},
		{time.Time{}, math.MinInt64 + 1},
		{time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64},
	} {
		if got := UnixNano(tc.t); got != tc.want {
			t.Errorf("UnixNano(%s) = %d, want %d", tc.t, got, tc.want)
		}
	}
}

// TestClosed: after Close, every call of the portable layer fails with errClosed before
// it reaches the driver, and a cancelled context comes first.
func TestClosed(t *testing.T) {
	ctx := context.Background()
	s := Adapt(&swapDriver{memDriver{m: map[Key]Entry{}}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	k := Key{Namespace: "ns", ID: "k"}
	_, getErr := s.Get(ctx, k)
	_, acqErr := s.Acquire(ctx, k, Owner{Token: "t"}, time.Minute)
	_, nsErr := s.Namespaces(ctx)
	_, relErr := s.ReleaseAll(ctx, "ns")
	_, verErr := s.(Versioner).Versions(ctx, []string{"c"})
	for what, err := range map[string]error{
		"Get": getErr, "Set": s.Set(ctx, k, Entry{Value: []byte("v")}), "Acquire": acqErr,
		"Namespaces": nsErr, "ReleaseAll": relErr, "Versions": verErr,
	} {
		if !errors.Is(err, errClosed) {
			t.Errorf("%s after Close: %v; want errClosed", what, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cancelled, k); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context after Close: %v; want context.Canceled", err)
	}
}

// NotFound is a miss that names its key.
func TestNotFound(t *testing.T) {
	err := NotFound(Key{Namespace: "ns", ID: "id"})
	if !errors.Is(err, ErrNotFound) || err.Error() != "store: not found: ns/id" {
		t.Errorf("NotFound = %q; want an error matching ErrNotFound that names ns/id", err)
	}
}

// leaseKeys and leaseCodec, which a batch uses to name and encode its leases, give
// what leaseKey and encodeLease give, key after key, whatever changes between keys:
// the namespace, the owner (host, pid, token), the expiry.
func TestLeaseKeysAndCodec(t *testing.T) {
	at := time.Unix(1700000000, 5)
	o := Owner{Host: "h", PID: 1, Token: "t"}
	ls := []Lease{
		{Key: Key{Namespace: "a", ID: "1"}, Owner: o, ExpiresAt: at},
		{Key: Key{Namespace: "a", ID: "2"}, Owner: o, ExpiresAt: at},
		{Key: Key{Namespace: "b", ID: "1"}, Owner: o, ExpiresAt: at},
		{Key: Key{Namespace: "a", ID: "3"}, Owner: o, ExpiresAt: at.Add(1)},
		{Key: Key{Namespace: "a", ID: "4"}, Owner: Owner{Host: "h", PID: 1, Token: "u"}, ExpiresAt: at.Add(1)},
		{Key: Key{Namespace: "a", ID: "5"}, Owner: Owner{Host: "h", PID: 2, Token: "u"}, ExpiresAt: at.Add(1)},
		{Key: Key{Namespace: "a", ID: "6"}, Owner: Owner{Host: "g", PID: 2, Token: "u"}, ExpiresAt: at.Add(1)},
		{Key: Key{Namespace: "", ID: "7"}, Owner: Owner{Host: "g", PID: 2, Token: "u"}, ExpiresAt: at.Add(1)},
	}
	var lk leaseKeys
	var lc leaseCodec
	for _, l := range ls {
		if got, want := lk.key(l.Key), leaseKey(l.Key); got != want {
			t.Errorf("leaseKeys.key(%+v) = %+v, want %+v", l.Key, got, want)
		}
		if got, want := lc.encode(l), encodeLease(l); !bytes.Equal(got, want) {
			t.Errorf("leaseCodec.encode(%+v) = %q, want %q", l, got, want)
		}
	}
}
