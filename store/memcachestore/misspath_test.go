package memcachestore

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

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
	mk := func() *Store {
		c := memcache.New(srv.Addr)
		c.Timeout = 5 * time.Second
		t.Cleanup(func() { _ = c.Close() })
		s, err := New(c, &Options{Addr: srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	s, other := mk(), mk()
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
