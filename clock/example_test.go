package clock_test

import (
	"fmt"
	"time"

	"github.com/cachier-go/cachier/clock"
)

// A fake clock moves only when the test moves it.
func ExampleFake() {
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t := c.NewTimer(time.Hour)
	c.Advance(time.Hour)
	fmt.Println((<-t.C()).Format(time.RFC3339))
	// Output: 2026-01-01T01:00:00Z
}
