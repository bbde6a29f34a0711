package named

import (
	"fmt"
	"time"
)

// A Rule saves a cache once at least Changes changes are unsaved and at least After has
// passed since it was last saved (or loaded). A cache is saved when any of its rules
// holds. These are Redis's "save" points, which cacheman's defaults follow.
type Rule struct {
	Changes int
	After   time.Duration
}

// String returns "N changes after D", for messages.
func (r Rule) String() string { return fmt.Sprintf("%d changes after %s", r.Changes, r.After) }

// DefaultRules are cacheman's: save after 60 s if 10000 keys changed, after 300 s if
// 10 changed, after 900 s if any changed.
var DefaultRules = []Rule{
	{Changes: 10000, After: 60 * time.Second},
	{Changes: 10, After: 300 * time.Second},
	{Changes: 1, After: 900 * time.Second},
}

// due reports whether any rule holds for changes unsaved changes, the last save at
// saved and the time now.
func due(rules []Rule, changes int, saved, now time.Time) bool {
	if changes <= 0 {
		return false
	}
	for _, r := range rules {
		if changes >= r.Changes && now.Sub(saved) >= r.After {
			return true
		}
	}
	return false
}

func checkRules(rules []Rule) error {
	for _, r := range rules {
		if r.Changes < 1 || r.After < 0 {
			return fmt.Errorf("%w: autosync rule %v: need at least 1 change and a non-negative duration", ErrOption, r)
		}
	}
	return nil
}
