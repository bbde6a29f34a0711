package sqlstore_test

import (
	"testing"

	"github.com/cachier-go/cachier/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// postgresURL and mysqlDSN name the shared servers (throwaway ones, or those named by
// testserver's Env* variables).
func postgresURL(t testing.TB) string { return testserver.Postgres(t).URL }

func mysqlDSN(t testing.TB) string { return testserver.MariaDB(t).URL }
