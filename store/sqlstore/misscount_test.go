package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/cachier-go/cachier"
	"github.com/cachier-go/cachier/store"
	"github.com/cachier-go/cachier/store/sqlstore"
)

// TestMissStatementsMariaDB counts, with MariaDB's session counters, what a cachier
// miss and a hit send once the store's statements are prepared: every statement is an
// execution of a statement prepared once per connection (go-sql-driver without
// interpolateParams would otherwise send a PREPARE, the EXECUTE and a CLOSE, three
// round trips, for each), and a miss is five of them: the first read, the lease's
// insert and the reads after it (GetAndCreate), the upsert and the delete that reads
// the counter (SetAndDelete, deleteReading). The raw get+set of BenchmarkMissVsRaw is
// two.
func TestMissStatementsMariaDB(t *testing.T) {
	e := engines[2]
	db := e.open(t)
	db.SetMaxOpenConns(1) // the session counters are the store's one connection's
	d, err := sqlstore.New(db, &sqlstore.Options{Table: freshTable(t, db, e.dialect)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := cachier.Wrap(func(_ context.Context, i int) ([]byte, error) { return benchValue, nil },
		cachier.Name("count/miss"), cachier.WithStore(store.Adapt(d)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func(i int) {
		t.Helper()
		if _, err := f.Call(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	call(0) // creates the table, prepares the statements
	for _, tc := range []struct {
		name    string
		arg     int
		execute int64
	}{
		{"miss", 1, 5},
		{"hit", 1, 1},
	} {
		before := comCounters(t, db)
		call(tc.arg)
		after := comCounters(t, db)
		// Questions counts every statement the client sent, the SHOW that reads the
		// counters included.
		got := map[string]int64{}
		for _, name := range []string{"Questions", "Com_stmt_execute", "Com_stmt_prepare", "Com_stmt_close"} {
			got[name] = after[name] - before[name]
		}
		want := map[string]int64{"Questions": tc.execute + 1, "Com_stmt_execute": tc.execute,
			"Com_stmt_prepare": 0, "Com_stmt_close": 0}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%s: %s = %d, want %d (all: %v)", tc.name, name, got[name], w, got)
			}
		}
	}
}

// comCounters reads the session's statement counters.
func comCounters(t *testing.T, db *sql.DB) map[string]int64 {
	t.Helper()
	rows, err := db.Query(`SHOW SESSION STATUS WHERE Variable_name IN ('Questions', 'Com_stmt_execute', 'Com_stmt_prepare', 'Com_stmt_close')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int64{}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		m[name] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}
