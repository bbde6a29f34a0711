package mongostore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cachier-go/cachier/internal/testserver"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/storetest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, db, coll, uri string
	}{
		{url: "mongodb://127.0.0.1:27017/app", db: "app", coll: "cachier", uri: "mongodb://127.0.0.1:27017/app"},
		{url: "mongodb://u:p@a:1,b:2/app?collection=memo&authSource=admin",
			db: "app", coll: "memo", uri: "mongodb://u:p@a:1,b:2/app?authSource=admin"},
		{url: "mongodb+srv://cluster.example.com/app?retryWrites=true&w=majority",
			db: "app", coll: "cachier", uri: "mongodb+srv://cluster.example.com/app?retryWrites=true&w=majority"},
		{url: "MONGODB://h/app?replicaSet=rs0&collection=c", db: "app", coll: "c", uri: "mongodb://h/app?replicaSet=rs0"},
	} {
		c, err := parseURL(storetest.MustParseURL(t, tc.url))
		if err != nil {
			t.Errorf("parseURL(%q): %v", tc.url, err)
			continue
		}
		if c.database != tc.db || c.collection != tc.coll || c.uri != tc.uri {
			t.Errorf("parseURL(%q) = %+v; want db %q coll %q uri %q", tc.url, c, tc.db, tc.coll, tc.uri)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct {
		url, want string
	}{
		{"redis://h/app", "not mongodb"},
		{"mongodb:h", "want mongodb://host/database"},
		{"mongodb:///app", "want mongodb://host/database"},
		{"mongodb://h", "no database"},
		{"mongodb://h/", "no database"},
		{"mongodb://user:hunter2@h", "no database"},
		{"mongodb://user:hunter2@h/app?nope=1", `unknown parameter "nope"; accepted: collection, and MongoDB connection string options`},
		{"mongodb://h/app#x", "fragment"},
		{"mongodb://h/app?collection=a%20b", "collection"},
		{"mongodb://h/app?collection=system.users", "reserved"},
		{"mongodb://h/app?lease_collection=l", `parameter "lease_collection" is no longer used`},
		{"mongodb://h/app?version_collection=v", `parameter "version_collection" is no longer used`},
		{"mongodb://h/app?collection=a&collection=b", "given 2 times"},
		{"mongodb://h/app?a=%zz", "query"},
		{"mongodb://h/app?connectTimeoutMS=soon", "connecttimeoutms"},
		{"mongodb+srv://h:27017/app", "port"},
	} {
		_, err := parseURL(storetest.MustParseURL(t, tc.url))
		// want is looked for whatever its case: the driver's messages are not ours.
		if storetest.CheckBadURL(t, tc.url, err, "", "hunter2") &&
			!strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
			t.Errorf("parseURL(%q) = %v; want an error containing %q", tc.url, err, tc.want)
		}
	}
}

func TestOpen(t *testing.T) {
	u := strings.TrimSuffix(testserver.FerretDB(t).URL, "/") + "/cachier_test?collection=opened"
	s, ms := storetest.Opened[*Store](t, u)
	if ms.client == nil || ms.coll.Name() != "opened" {
		t.Fatalf("Open = %#v; want an owning *Store on collection opened", ms)
	}
	k := store.Key{Namespace: "open", ID: "k"}
	if _, err := s.Get(context.Background(), k); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get through an opened store: %v; want a miss", err)
	}
	_, err := store.Open(context.Background(), "mongodb://h/app?nope=1")
	storetest.CheckBadURL(t, "mongodb://h/app?nope=1", err, "nope", "")
}

// FuzzParseURL checks that the parser never panics, never dials or resolves, and that
// whatever it accepts names a database and valid collections.
func FuzzParseURL(f *testing.F) {
	storetest.FuzzURL(f, []string{
		"mongodb://127.0.0.1:27017/app", "mongodb://u:p@a:1,b:2/app?collection=c&authSource=admin",
		"mongodb+srv://cluster.example.com/app?w=majority", "mongodb://h/app?lease_collection=l&collection=c",
		"mongodb://h/app?tls=true&tlsInsecure=true", "mongodb://%2Ftmp%2Fmongo.sock/app",
	}, parseURL, func(t *testing.T, raw string, c config) {
		if c.database == "" || ValidateCollectionName(c.collection) != nil {
			t.Errorf("parseURL(%q) accepted %+v", raw, c)
		}
	})
}
