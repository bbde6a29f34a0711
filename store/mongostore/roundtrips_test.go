package mongostore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
)

// commandLog records the commands a client sends (the driver's own handshakes and
// heartbeats go through no CommandMonitor).
type commandLog struct {
	mu   sync.Mutex
	cmds []string
}

func (l *commandLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cmds
	l.cmds = nil
	return c
}

// countingClient connects to the shared FerretDB with a CommandMonitor that logs
// every command the client starts.
func countingClient(t testing.TB) (*mongo.Client, *commandLog) {
	t.Helper()
	srv := testserver.FerretDB(t)
	l := &commandLog{}
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		l.mu.Lock()
		l.cmds = append(l.cmds, e.CommandName)
		l.mu.Unlock()
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URL).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client, l
}

// A cachier miss costs six commands on MongoDB (it was eight: find, find, insert,
// update, insert, delete, delete, find): the first find; GetAndCreate's insert of
// the lease record and find of the entry and the epoch counter; SetAndDelete's
// update, which writes the entry and claims the lease record, its delete, which drops
// the record and the claim, and its find of the epoch counter after the write. On
// FerretDB, which scans for a $in or a filter on more than _id, it is eight commands
// by _id alone, in seven rounds. A hit is one find.
func TestRoundTrips(t *testing.T) {
	client, log := countingClient(t)
	coll := client.Database("cachier_test").Collection(fmt.Sprintf("trips%d", time.Now().UnixNano()))
	t.Cleanup(func() { _ = coll.Drop(context.Background()) })
	d, err := New(coll, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := cachier.Wrap(func(_ context.Context, s string) (string, error) { return "v" + s, nil },
		cachier.Name("roundtrips"), cachier.WithStore(store.Adapt(d)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Call(ctx, "warm"); err != nil { // the collection and indexes are made once
		t.Fatal(err)
	}
	log.take()
	count := func(what, arg string, want []string) {
		t.Helper()
		if v, err := f.Call(ctx, arg); err != nil || v != "v"+arg {
			t.Fatalf("%s: %q, %v", what, v, err)
		}
		if got := log.take(); !slices.Equal(got, want) {
			t.Errorf("%s: %d commands [%s], want %d [%s]", what, len(got), strings.Join(got, " "), len(want), strings.Join(want, " "))
		}
	}
	for i := range 3 {
		arg := strconv.Itoa(i)
		// FerretDB (idOnly): the entry and the counter read by one find each, at once,
		// and the lease record read before its delete, all by _id.
		count("miss", arg, []string{"find", "insert", "find", "find", "update", "find", "delete", "find"})
		count("hit", arg, []string{"find"})
	}
	if st := f.Stats(); st.StoreErrors != 0 {
		t.Errorf("%d store errors", st.StoreErrors)
	}
}
