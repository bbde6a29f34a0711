package mongostore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/cachier-go/cachier/store"

	"github.com/cachier-go/cachier/store/storetest"
)

// GetMany reads with one find of {_id: {$in: ...}}.
func TestBatcher(t *testing.T) {
	s, err := New(connect(t).Database("cachier_test").Collection("batch"), nil)
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunBatchTests(t, s)
}

// TestGetManyAcrossBatches reads more keys than one find takes (maxIn) and more
// documents than one reply holds (101 in the first batch, the rest on getMore), and
// checks that each key gets its own entry.
func TestGetManyAcrossBatches(t *testing.T) {
	s, _ := newStore(t, nil)
	ctx := context.Background()
	const n = 1100
	ks, es := make([]store.Key, n), make([]store.Entry, n)
	at := time.Unix(1_700_000_000, 0)
	for i := range n {
		ks[i] = store.Key{Namespace: "ns", ID: fmt.Sprintf("k%04d", i)}
		es[i] = store.Entry{Value: []byte(fmt.Sprintf("value %d", i)), StoredAt: at.Add(time.Duration(i))}
	}
	if _, err := s.SetMany(ctx, ks, es); err != nil {
		t.Fatal(err)
	}
	got, errs, err := s.GetMany(ctx, ks)
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i := range n {
		if errs[i] != nil || string(got[i].Value) != string(es[i].Value) || !got[i].StoredAt.Equal(es[i].StoredAt) {
			if bad++; bad == 1 {
				t.Errorf("GetMany: %s = %q at %v, %v; want %q at %v", ks[i], got[i].Value, got[i].StoredAt, errs[i], es[i].Value, es[i].StoredAt)
			}
		}
	}
	if bad > 0 {
		t.Errorf("GetMany: %d of %d keys wrong", bad, n)
	}
}

// reusingCursor is a docCursor that reads every document into the same buffer, as
// a *mongo.Cursor may: its Current is valid only until the next Next.
type reusingCursor struct {
	docs []bson.Raw
	buf  []byte
}

func (c *reusingCursor) Next(context.Context) bool {
	if len(c.docs) == 0 {
		return false
	}
	c.buf = append(c.buf[:0], c.docs[0]...)
	c.docs = c.docs[1:]
	return true
}

func (c *reusingCursor) Err() error        { return nil }
func (c *reusingCursor) current() bson.Raw { return c.buf }

// TestCollectCopies checks that collect keeps each document whole when the cursor
// reuses its buffer for the next one.
func TestCollectCopies(t *testing.T) {
	cur := &reusingCursor{buf: make([]byte, 0, 256)}
	for i := range 3 {
		raw, err := bson.Marshal(bson.D{{Key: fID, Value: fmt.Sprintf("id%d", i)}, {Key: fValue, Value: fmt.Sprintf("value %d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		cur.docs = append(cur.docs, raw)
	}
	docs := map[string]bson.Raw{}
	if err := collect(context.Background(), cur, docs); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := fmt.Sprintf("id%d", i)
		if got := docs[id].Lookup(fValue).StringValue(); got != fmt.Sprintf("value %d", i) {
			t.Errorf("collect: document %s holds %s %q; want %q", id, fValue, got, fmt.Sprintf("value %d", i))
		}
	}
}
