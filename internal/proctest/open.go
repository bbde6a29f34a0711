package proctest

import (
	"context"
	"net/url"
	"time"

	"github.com/cachier-go/cachier/store"
)

// connectTimeout bounds how long Open waits for the server's first answer: as long
// as a worker may take (see worker.wait), since a test must not fail because a
// loaded machine forks a database backend slowly.
const connectTimeout = 2 * time.Minute

// Open is store.Open for the tests and their workers, without store.Open's own
// bound on the server's first answer (store.OpenCheckTimeout, 3 s): on a busy 2-core
// CI machine a new PostgreSQL connection under -race took longer ("server does not
// answer … failed to receive message: timeout"), and the workers failed to start.
// It opens the store lazily (lazy=1) and then waits up to connectTimeout, or ctx,
// for the server to answer, so a store that cannot reach its server still fails
// here rather than in the test's first call.
func Open(ctx context.Context, rawURL string) (store.Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return store.Open(ctx, rawURL) // store.Open says what is wrong with it
	}
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += "lazy=1"
	st, err := store.Open(ctx, u.String())
	if err != nil {
		return nil, err
	}
	if p, ok := store.Unwrap(st).(store.Pinger); ok {
		pctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		if err := p.Ping(pctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}
