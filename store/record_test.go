package store

import (
	"bytes"
	"context"
	"errors"
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
