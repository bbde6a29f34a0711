package mongostore

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/internal/testserver"
)

func workerURL(t *testing.T, srv *testserver.Server) string {
	return strings.TrimSuffix(srv.URL, "/") + "/cachier_test?collection=proctest"
}

func TestStampedeAcrossProcesses(t *testing.T) {
	proctest.Stampede(t, workerURL(t, testserver.FerretDB(t)), 4, 16)
}

func TestKilledHolderIsTakenOver(t *testing.T) {
	proctest.KillTakeover(t, workerURL(t, testserver.FerretDB(t)))
}

func TestOutage(t *testing.T) {
	srv := testserver.Dedicated(t, testserver.KindFerretDB)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	st, err := New(client.Database("cachier_test").Collection("outage"), nil)
	if err != nil {
		t.Fatal(err)
	}
	proctest.Outage(t, st, func() { srv.Stop(t) }, func() { srv.Start(t) })
}

func TestInvalidationThroughCachier(t *testing.T) {
	u := workerURL(t, testserver.FerretDB(t))
	proctest.TagAcrossProcesses(t, u)
	client, err := mongo.Connect(options.Client().ApplyURI(testserver.FerretDB(t).URL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	st, err := New(client.Database("cachier_test").Collection("invalidation"), nil)
	if err != nil {
		t.Fatal(err)
	}
	proctest.Invalidation(t, st)
}

// The function-level behaviour with the local tier on, in one process and across
// processes (the store does not notify: the other process polls).
func TestLocalTierMatrix(t *testing.T) {
	proctest.LocalTierMatrix(t, workerURL(t, testserver.FerretDB(t)), 200*time.Millisecond)
}
