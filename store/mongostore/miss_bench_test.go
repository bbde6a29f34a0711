package mongostore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachier-go/cachier/internal/missbench"
)

// BenchmarkMissVsRaw alternates a call of a cachier.Func through the store with the
// driver's own commands on the same server (FerretDB, the tests' server), timing
// each, and reports both latencies and their ratio (store/raw), from the same run
// (missbench.Run):
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
	set := func(k string) error {
		_, err := raw.ReplaceOne(ctx, bson.D{{Key: "_id", Value: k}},
			bson.D{{Key: "_id", Value: k}, {Key: "v", Value: missbench.Value}}, options.Replace().SetUpsert(true))
		return err
	}
	missbench.Run(b, "bench/mongo", d, missbench.Raw{
		Set: set,
		Miss: func(k string) error {
			if err := raw.FindOne(ctx, bson.D{{Key: "_id", Value: k}}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
				return fmt.Errorf("raw FindOne of a new _id: %v", err)
			}
			return set(k)
		},
		Hit: func(k string) error {
			_, err := raw.FindOne(ctx, bson.D{{Key: "_id", Value: k}}).Raw()
			return err
		},
	})
}
