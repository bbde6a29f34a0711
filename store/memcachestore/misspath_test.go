package memcachestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// A lease record this Store created is deleted by its CAS in SetAndDelete's round
// trip, so the CAS must still be the record's: a record another process replaced
// meanwhile (a takeover, a renewal) is kept.
func TestSetAndDeleteKeepsAReplacedLease(t *testing.T) {
	srv := testserver.Memcached(t)
	ctx := context.Background()
	s, other := openStore(t, srv.Addr, srv.Addr), openStore(t, srv.Addr, srv.Addr)
	ns := storetest.Namespace(t)
	at := time.Now()
	mine := store.Entry{Value: []byte("cL1 mine"), StoredAt: at}
	theirs := store.Entry{Value: []byte("cL1 theirs"), StoredAt: at}
	for name, replace := range map[string]func(k store.Key) error{
		"swapped": func(rk store.Key) error {
			ok, err := other.Swap(ctx, rk, mine.Value, &theirs)
			if err == nil && !ok {
				err = errors.New("swap lost")
			}
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			k := store.Key{Namespace: ns, ID: name}
			rk := store.Key{Namespace: store.InternalPrefix + ns, ID: name}
			r, err := s.GetAndCreate(ctx, k, nil, rk, mine)
			if err != nil || !r.Created {
				t.Fatalf("GetAndCreate: created %v, %v", r.Created, err)
			}
			if err := replace(rk); err != nil {
				t.Fatal(err)
			}
			want, _ := other.Get(ctx, rk)
			deleted, _, err := s.SetAndDelete(ctx, k, store.Entry{Value: []byte("v"), StoredAt: at}, rk, mine.Value, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := other.Get(ctx, rk)
			if deleted || err != nil || !bytes.Equal(got.Value, want.Value) {
				t.Errorf("SetAndDelete of a lease another process replaced: deleted %v; the record reads %q, %v; want it kept", deleted, got.Value, err)
			}
		})
	}
}

// Item keys are what earlier versions wrote (sha256 of namespace NUL id, base64url),
// so entries survive an upgrade; counters parse as strconv does, padded or not.
func TestKeysAndCounters(t *testing.T) {
	s := &Store{prefix: "p"}
	k := store.Key{Namespace: "ns", ID: strings.Repeat("é", 300)} // beyond the stack buffer
	for _, k := range []store.Key{{Namespace: "ns", ID: "id"}, k} {
		sum := sha256.Sum256([]byte(k.Namespace + "\x00" + k.ID))
		if got, want := s.itemKey(k), "p:e:"+base64.RawURLEncoding.EncodeToString(sum[:]); got != want {
			t.Errorf("itemKey = %q, want %q", got, want)
		}
		gs := sha256.Sum256([]byte(k.Namespace))
		if got, want := s.genKey(k.Namespace), "p:g:"+base64.RawURLEncoding.EncodeToString(gs[:]); got != want {
			t.Errorf("genKey = %q, want %q", got, want)
		}
	}
	for in, want := range map[string]int64{
		"0": 0, "42": 42, "42  ": 42, " 7": 7, "18446744073709551615": -1,
		"": -2, "18446744073709551616": -2, "1x": -2, "-1": -2, "+1": -2, "1 2": -2,
	} {
		g, ok := parseGen([]byte(in))
		switch {
		case want == -2 && ok, want != -2 && !ok, want >= 0 && g != uint64(want), want == -1 && g != math.MaxUint64:
			t.Errorf("parseGen(%q) = %d, %v", in, g, ok)
		}
	}
}
