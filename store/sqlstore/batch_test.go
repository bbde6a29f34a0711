package sqlstore_test

import (
	"testing"

	"github.com/cachier-go/cachier/store/sqlstore"
	"github.com/cachier-go/cachier/store/storetest"
)

// GetMany reads with one SELECT ... IN per namespace on every engine; SetMany falls
// back to concurrent upserts.
func TestBatcher(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			db := e.open(t)
			s, err := sqlstore.New(db, &sqlstore.Options{Table: freshTable(t, db, e.dialect)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			storetest.RunBatchTests(t, s)
		})
	}
}
