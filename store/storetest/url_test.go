package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cachier-go/cachier/store"
)

// recorder is a testing.TB that counts the failures reported to it.
type recorder struct {
	testing.TB
	failures int
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failures++ }

func TestCheckBadURL(t *testing.T) {
	bad := fmt.Errorf("%w: redis://u:xxxxx@h: unknown parameter", store.ErrBadURL)
	for _, tc := range []struct {
		err          error
		want, secret string
		failures     int
	}{
		{bad, "unknown parameter", "hunter2", 0},
		{bad, "", "", 0},
		{nil, "", "", 1},
		{errors.New("unknown parameter"), "unknown parameter", "", 1},
		{bad, "Unknown", "", 1},
		{fmt.Errorf("%w: hunter2", store.ErrBadURL), "", "hunter2", 1},
		{errors.New("hunter2"), "", "hunter2", 2},
	} {
		r := &recorder{TB: t}
		ok := CheckBadURL(r, "redis://u:hunter2@h", tc.err, tc.want, tc.secret)
		if r.failures != tc.failures || ok != (tc.failures == 0) {
			t.Errorf("CheckBadURL(%v, want %q, secret %q) = %v with %d failures; want %d",
				tc.err, tc.want, tc.secret, ok, r.failures, tc.failures)
		}
	}
	if u := MustParseURL(t, "redis://h:1/0"); u.Host != "h:1" {
		t.Errorf("MustParseURL host = %q", u.Host)
	}
}
