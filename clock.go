package cachier

import "github.com/cachier-go/cachier/clock"

// A Clock tells the time and schedules timers. Entries are stamped and aged with it,
// and every wait, lease renewal, breaker backoff and cleanup interval of a Func is
// measured with it, so that a test that injects a [clock.Fake] (WithClock) never
// sleeps. It is the same interface as package clock's.
type Clock = clock.Clock
