package cachier

import "time"

// A Clock tells the time. Entries are stamped and aged with it; tests inject their
// own instead of sleeping.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
