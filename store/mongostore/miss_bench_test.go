package mongostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

var (
	benchValue = bytes.Repeat([]byte("cachier!"), 32) // bench/'s payload
	benchSeq   atomic.Int64
)

// BenchmarkMissVsRaw alternates a call of a cachier.Func through the store with the
// driver's own commands on the same server (FerretDB, the tests' server), timing
// each, and reports both latencies and their ratio (store/raw), from the same run:
//
//   - miss: a call on a new key (look up, take the lease, compute at once, store and
//     release) against a FindOne that misses and a ReplaceOne upsert of a new _id,
//     as bench/ does it;
//   - hit: a call of a stored key against a FindOne of a stored document.
//
// Run it with
//
//	go test -run '^$' -bench MissVsRaw -count 5 ./store/mongostore/
func BenchmarkMissVsRaw(b *testing.B) {
	client := connect(b)
	ctx := context.Background()
	db := client.Database("cachier_test")
	name := fmt.Sprintf("bench%d", time.Now().UnixNano())
	coll, raw := db.Collection(name), db.Collection(name+"_raw")
	b.Cleanup(func() { _ = coll.Drop(ctx); _ = raw.Drop(ctx) })
	d, err := New(coll, nil)
	if err != nil {
		b.Fatal(err)
	}
	f, err := cachier.Wrap(func(context.Context, string) ([]byte, error) { return benchValue, nil },
		cachier.Name("bench/mongo"), cachier.WithStore(store.Adapt(d)))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Call(ctx, "hot"); err != nil {
		b.Fatal(err)
	}
	rawSet := func(k string) error {
		_, err := raw.ReplaceOne(ctx, bson.D{{Key: "_id", Value: k}},
			bson.D{{Key: "_id", Value: k}, {Key: "v", Value: benchValue}}, options.Replace().SetUpsert(true))
		return err
	}
	if err := rawSet("hot"); err != nil {
		b.Fatal(err)
	}
	ops := []struct {
		name       string
		cachier    func() error
		raw        func() error
		wantMisses bool
	}{
		{"miss", func() error {
			_, err := f.Call(ctx, "miss-"+strconv.FormatInt(benchSeq.Add(1), 10))
			return err
		}, func() error {
			k := "miss-" + strconv.FormatInt(benchSeq.Add(1), 10)
			if err := raw.FindOne(ctx, bson.D{{Key: "_id", Value: k}}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
				return fmt.Errorf("raw FindOne of a new _id: %v", err)
			}
			return rawSet(k)
		}, true},
		{"hit", func() error {
			_, err := f.Call(ctx, "hot")
			return err
		}, func() error {
			_, err := raw.FindOne(ctx, bson.D{{Key: "_id", Value: "hot"}}).Raw()
			return err
		}, false},
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			before := f.Stats()
			storetest.Alternate(b, op.cachier, op.raw)
			st := f.Stats().Sub(before)
			if st.StoreErrors != 0 || (st.Misses != 0) != op.wantMisses {
				b.Fatalf("%d store errors, %d misses", st.StoreErrors, st.Misses)
			}
		})
	}
}
