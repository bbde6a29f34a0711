package cachier

import "testing"

func TestResultString(t *testing.T) {
	for r, want := range map[Result]string{ResultMiss: "miss", ResultHit: "hit", ResultStaleHit: "stale_hit", ResultSkipped: "skipped"} {
		if got := r.String(); got != want {
			t.Errorf("Result(%d).String() = %q, want %q", r, got, want)
		}
	}
}
