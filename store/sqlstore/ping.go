package sqlstore

import "context"

// Ping checks that the database answers with the URL's credentials and database.
// store.Open calls it unless the URL says lazy=1.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }
