package mongostore

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

// BenchmarkGet compares the store's Get with the driver's own FindOne by _id of the same
// document on the same server, hit and miss. Read the ratios from one run:
//
//	go test -run '^$' -bench 'Get$' ./store/mongostore
func BenchmarkGet(b *testing.B) {
	s, coll := newStore(b, nil)
	ctx := context.Background()
	k := store.Key{Namespace: storetest.Namespace(b), ID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	if err := s.Set(ctx, k, store.Entry{Value: make([]byte, 256), StoredAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	id := docID(k)
	missing := store.Key{Namespace: k.Namespace, ID: "missing"}
	missingID := docID(missing)

	b.Run("hit/store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hit/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
			if err != nil || len(raw) == 0 {
				b.Fatal(err)
			}
		}
	})
	b.Run("miss/store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, missing); !errors.Is(err, store.ErrNotFound) {
				b.Fatal(err)
			}
		}
	})
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
