package mongostore

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/cachier-go/cachier/store"
)

func init() {
	store.Register(open, "mongodb", "mongodb+srv")
}

// DefaultCollection is the entry collection of a URL without collection=.
const DefaultCollection = "cachier"

// ourParams are the query parameters this package reads; every other one must be a
// MongoDB connection string option.
var ourParams = []string{"collection"}

// goneParams named the lease and counter collections, which are gone: the portable
// layer keeps its records in the entry collection.
var goneParams = []string{"lease_collection", "version_collection"}

// config is what a URL says, before anything is dialled.
type config struct {
	uri        string // the connection string for the driver, without our parameters
	database   string
	collection string
	opts       Options
}

// parseURL reads mongodb://[user:pass@]host[:port][,host...]/db[?collection=..&<driver options>]
// (or mongodb+srv://). It never dials and never resolves names. Errors match
// store.ErrBadURL and never carry the password.
func parseURL(u *url.URL) (config, error) {
	var c config
	bad := func(format string, args ...any) (config, error) {
		return config{}, store.BadURL(u, format, args...)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "mongodb" && scheme != "mongodb+srv" {
		return bad("scheme %q is not mongodb or mongodb+srv", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return bad("want %s://host/database", scheme)
	}
	if u.Fragment != "" {
		return bad("unexpected fragment")
	}
	if scheme == "mongodb+srv" && (u.Port() != "" || strings.Contains(u.Host, ",")) {
		return bad("a mongodb+srv URL names one host without a port")
	}
	p, err := store.ReadParams(u)
	if err != nil {
		return config{}, err
	}
	for _, name := range goneParams {
		if p.Has(name) {
			return bad("parameter %q is no longer used: leases and version counters live in the entry collection; remove it", name)
		}
	}
	c.collection = DefaultCollection
	p.Check("collection", &c.collection, ValidateCollectionName)
	if err := p.Err(); err != nil {
		return config{}, err
	}
	q := p.Rest()
	driverURL := *u
	driverURL.Scheme = scheme
	driverURL.RawQuery = q.Encode()
	c.uri = driverURL.String()

	// Validate the driver's part as a plain mongodb:// string, so that parsing never
	// looks up SRV or TXT records.
	check := driverURL
	check.Scheme = "mongodb"
	cs, err := connstring.Parse(check.String())
	if err != nil {
		return bad("%v", err)
	}
	if len(cs.UnknownOptions) > 0 {
		unknown := slices.Sorted(maps.Keys(cs.UnknownOptions))
		return bad("unknown parameter %q; accepted: %s, and MongoDB connection string options",
			unknown[0], strings.Join(ourParams, ", "))
	}
	if cs.Database == "" {
		return bad("no database: want %s://host/database", scheme)
	}
	c.database = cs.Database
	return c, nil
}

// open is the store.Opener for mongodb:// and mongodb+srv:// URLs. The store owns the
// client it makes and disconnects it in Close.
func open(ctx context.Context, u *url.URL) (store.Store, error) {
	c, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	client, err := mongo.Connect(options.Client().ApplyURI(c.uri))
	if err != nil {
		return nil, fmt.Errorf("mongostore: %s: %s", store.RedactURL(u), store.Redact(err.Error()))
	}
	s, err := New(client.Database(c.database).Collection(c.collection), &c.opts)
	if err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	s.client = client
	return store.Adapt(s), nil
}

// Ping checks that the server answers. store.Open calls it unless the URL says
// lazy=1. A store made by New over a collection pings through the collection's
// client.
func (s *Store) Ping(ctx context.Context) error {
	c := s.client
	if c == nil {
		c = s.coll.Database().Client()
	}
	return c.Ping(ctx, nil)
}
