package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/cachier-go/cachier/store"
)

var _ store.ExpiryCleaner = (*Store)(nil)

// nullMicros is an entry's expires_at: NULL when it never expires.
func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(t), Valid: true}
}

func fromNullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
}

// isDuplicateColumn reports the error of adding expires_at to a table that has it
// (MySQL 1060, SQLite, or PostgreSQL when two sessions race on IF NOT EXISTS).
func isDuplicateColumn(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "duplicate column") || strings.Contains(msg, "already exists")
}

// DeleteExpired implements store.ExpiryCleaner with one DELETE on the expires_at
// column.
func (s *Store) DeleteExpired(ctx context.Context, namespace string, now time.Time) (int, error) {
	return s.changed(ctx, s.q.deleteExpired, namespace, micros(now))
}
