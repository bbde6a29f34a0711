package mongostore

import (
	"testing"

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
