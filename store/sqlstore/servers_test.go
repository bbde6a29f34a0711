package sqlstore_test

import (
	"os"
	"testing"

	"github.com/cachier-go/cachier/internal/testserver"
)

// postgresURL and mysqlDSN name the servers to test against.
func postgresURL(t testing.TB) string {
	if u := os.Getenv(testserver.EnvPostgresURL); u != "" {
		return u
	}
	t.Skipf("no PostgreSQL: set %s", testserver.EnvPostgresURL)
	return ""
}

func mysqlDSN(t testing.TB) string {
	if u := os.Getenv(testserver.EnvMySQLURL); u != "" {
		return u
	}
	t.Skipf("no MariaDB: set %s", testserver.EnvMySQLURL)
	return ""
}
