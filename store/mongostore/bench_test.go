package mongostore

import (
	"context"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/cachier-go/cachier/store/storetest"
)

// BenchmarkGet compares the store's Get with the driver's own FindOne by _id of the same
// document on the same server, hit and miss. Read the ratios from one run:
//
//	go test -run '^$' -bench 'Get$' ./store/mongostore
func BenchmarkGet(b *testing.B) {
	s, coll := newStore(b, nil)
	ctx := context.Background()
	k, missing := storetest.BenchEntry(b, s)
	id, missingID := docID(k), docID(missing)

	b.Run("hit/store", storetest.BenchGetHit(s, k))
	b.Run("hit/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
			if err != nil || len(raw) == 0 {
				b.Fatal(err)
			}
		}
	})
	b.Run("miss/store", storetest.BenchGetMiss(s, missing))
	b.Run("miss/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: missingID}}).Raw(); !errors.Is(err, mongo.ErrNoDocuments) {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStore runs the shared store benchmarks.
func BenchmarkStore(b *testing.B) {
	s, _ := newStore(b, nil)
	storetest.RunBenchmarks(b, s)
}
