package sqlurl

import (
	"testing"

	"github.com/cachier-go/cachier/internal/proctest"
)

// Overlapping batches from 4 processes compute each key exactly once, on each SQL
// engine.
func TestBatchStampedeAcrossProcesses(t *testing.T) {
	for name, u := range engines(t) {
		t.Run(name, func(t *testing.T) { proctest.BatchStampede(t, u(t), 4) })
	}
}
