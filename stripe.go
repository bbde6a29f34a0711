package cachier

import (
	"sync/atomic"
	"unsafe"
)

// stripes is the number of cells of a stripedCounter, a power of two: enough that the
// goroutines of a few dozen cores rarely share one.
const stripes = 16

// stripedCounter is a counter that many cores add to without bouncing one cache line
// between them: each goroutine adds to a cell picked by the address of its stack, so a
// goroutine that counts in a loop keeps writing the same line, and Load sums the cells.
// It is for the hit counter, which every hit on every core updates.
type stripedCounter struct {
	cells [stripes]struct {
		n atomic.Uint64
		_ [56]byte // one cache line per cell
	}
}

// Add adds n.
func (c *stripedCounter) Add(n uint64) { c.cells[stripeIndex()].n.Add(n) }

// Load returns the sum of the cells. Concurrent Adds may or may not be counted.
func (c *stripedCounter) Load() uint64 {
	var sum uint64
	for i := range c.cells {
		sum += c.cells[i].n.Load()
	}
	return sum
}

// stripeIndex picks a cell for the calling goroutine from the address of its stack:
// stable for one goroutine between stack moves, and spread over the cells for
// goroutines whose stacks differ (by at least 8 KiB, hence the shift).
func stripeIndex() int {
	var b byte
	p := uint64(uintptr(unsafe.Pointer(&b))) >> 13
	return int((p * 0x9e3779b97f4a7c15) >> (64 - 4))
}
