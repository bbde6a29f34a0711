package cachier_test

import (
	"testing"

	"github.com/cachier-go/cachier/internal/proctest"
)

// Overlapping batches from 4 processes on one file store compute each key exactly
// once, and every caller gets that computation's value.
func TestFileStoreBatchStampedeAcrossProcesses(t *testing.T) {
	proctest.BatchStampede(t, "file://"+t.TempDir(), 4)
}
