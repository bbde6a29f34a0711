package cachier_test

import (
	"testing"

	"github.com/cachier-go/cachier/internal/proctest"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/memstore"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// 4 processes x 16 goroutines ask for one cold key on one file store: exactly one
// computation, and everyone gets its value.
func TestFileStoreStampedeAcrossProcesses(t *testing.T) {
	proctest.Stampede(t, "file://"+t.TempDir(), 4, 16)
}

// A worker SIGKILLed mid-computation blocks the others only until its lease expires;
// then exactly one of them takes over.
func TestFileStoreKilledHolderIsTakenOver(t *testing.T) {
	proctest.KillTakeover(t, "file://"+t.TempDir())
}

// Process A invalidates a tag; process B's next call recomputes.
func TestFileStoreTagAcrossProcesses(t *testing.T) {
	proctest.TagAcrossProcesses(t, "file://"+t.TempDir())
}

func TestInvalidationOnMemStore(t *testing.T) {
	proctest.Invalidation(t, store.Adapt(memstore.New(nil)))
}

// A stale entry with NextTime: every caller in 4 processes gets it at once, and
// exactly one background refresh runs among them.
func TestFileStoreRefreshOnceAcrossProcesses(t *testing.T) {
	proctest.RefreshOnce(t, "file://"+t.TempDir(), 4, 16)
}

// A short-lived process with NextTime closes its Func and store on the way out: its
// background refresh is stored, and no lease is left behind.
func TestFileStoreCloseKeepsTheRefreshAcrossProcesses(t *testing.T) {
	proctest.CloseAfterRefresh(t, "file://"+t.TempDir())
}

// Finding 1 across processes: a worker computing from old data when this process
// invalidates (or clears) leaves nothing this process is served afterwards.
func TestFileStoreInvalidateDuringComputationAcrossProcesses(t *testing.T) {
	t.Run("Invalidate", func(t *testing.T) { proctest.InvalidateDuringComputation(t, "file://"+t.TempDir(), false) })
	t.Run("Clear", func(t *testing.T) { proctest.InvalidateDuringComputation(t, "file://"+t.TempDir(), true) })
}

// Finding 2 and 4 across processes: Refresh answers with its own computation, not the
// worker's older one, whatever the worker's clock says.
func TestFileStoreRefreshAcrossProcesses(t *testing.T) {
	t.Run("same clock", func(t *testing.T) { proctest.RefreshWhileAnotherComputes(t, "file://"+t.TempDir(), "") })
	t.Run("writer 10s ahead", func(t *testing.T) { proctest.RefreshWhileAnotherComputes(t, "file://"+t.TempDir(), "10s") })
}

// CacheErrors: an error one process got is remembered for the next, as the error.
func TestFileStoreErrorRememberedAcrossProcesses(t *testing.T) {
	proctest.ErrorRemembered(t, "file://"+t.TempDir())
}

// BenchmarkFileStoreLocalTierCoherence: from a change in one process to a miss in
// another process's local tier, over fsnotify.
func BenchmarkFileStoreLocalTierCoherence(b *testing.B) {
	proctest.ReportCoherence(b, "file://"+b.TempDir(), nil)
}

// Finding 8 across processes: behind another process's stuck computation, a caller
// with WaitForCalcTimeout stops waiting and computes itself.
func TestFileStoreWaitForCalcTimeoutAcrossProcesses(t *testing.T) {
	proctest.WaitLimitAcrossProcesses(t, "file://"+t.TempDir())
}

// Finding 11 across processes: one key's entry, replaced by a directory in a shared
// file store, does not stop another process's hits on the healthy keys.
func TestFileStoreOneBadKeyAcrossProcesses(t *testing.T) {
	proctest.OneBadKeyAcrossProcesses(t, "file://"+t.TempDir())
}

// Finding 12 across processes: two processes whose store reads fail at the same time
// each run fn once for 16 goroutines of one key. Processes cannot share a run without
// a store; single flight holds within each.
func TestFileStoreSingleFlightWhileDownAcrossProcesses(t *testing.T) {
	proctest.SingleFlightWhileDownAcrossProcesses(t, "file://"+t.TempDir(), 2)
}

// The function-level behaviour with the local tier on: on the memory store (where it
// does nothing) and on files, in one process and across processes, where a change
// reaches the other process's local tier through fsnotify, long before its bound.
func TestLocalTierMatrix(t *testing.T) {
	t.Run("mem", func(t *testing.T) { proctest.LocalTierFuncs(t, store.Adapt(memstore.New(nil))) })
	t.Run("file", func(t *testing.T) { proctest.LocalTierMatrix(t, "file://"+t.TempDir(), 0) })
}
