package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// A copy of the migrated template, opened, is what Open makes of a new
// database: the same schema (tables, columns, indexes, constraints,
// triggers, functions, extensions), the same migrations recorded, the same
// rows in every table and the same sequences. Were it not (a template
// taken before a migration finished, or a migration that sets something a
// copy does not carry, such as ALTER DATABASE … SET), the tests that use
// it would run against a database production never has.
func TestTemplateCopyIsAFreshDatabase(t *testing.T) {
	ctx := context.Background()
	fresh, err := Open(ctx, pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	copied, _ := openFresh(t)
	want, got := contents(t, fresh), contents(t, copied)
	if len(want) < 10 {
		t.Fatalf("a fresh database has almost nothing in it: %q", want)
	}
	if !slices.Equal(got, want) {
		t.Errorf("copy:\n%q\nfresh database:\n%q", got, want)
	}
}

// contents lists the schema, the rows of every table (counted, and those
// of schema_migrations by version and name) and the sequences of a store's
// database, in a fixed order.
func contents(t *testing.T, s *Store) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, q := range []string{
		`SELECT 'extension ' || extname || ' ' || extversion FROM pg_extension`,
		`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '')
			FROM information_schema.columns WHERE table_schema = 'public'`,
		`SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'`,
		`SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
			WHERE connamespace = 'public'::regnamespace`,
		`SELECT 'trigger ' || tgrelid::regclass || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal`,
		`SELECT 'function ' || p.oid::regprocedure || ' ' || md5(p.prosrc) FROM pg_proc p
			WHERE p.pronamespace = 'public'::regnamespace`,
		`SELECT 'sequence ' || sequencename || ' ' || COALESCE(last_value, 0) FROM pg_sequences WHERE schemaname = 'public'`,
		`SELECT 'database setting ' || array_to_string(setconfig, ',') FROM pg_db_role_setting
			WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		`SELECT 'applied ' || version || '_' || name FROM schema_migrations`,
	} {
		out = append(out, textRows(t, s, q)...)
	}
	tables := textRows(t, s, `SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'`)
	for _, table := range tables {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s: %d rows", table, n))
	}
	return out
}

// textRows runs a query of one text column and returns its rows, sorted.
func textRows(t *testing.T, s *Store, query string) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	slices.Sort(out)
	return out
}
