package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Template is a database prepared once per test binary (migrated, for a
// store) and copied for each test that asks for one with PostgreSQL's own
// CREATE DATABASE … TEMPLATE. A copy is the template's files: the same
// schema, rows and sequences, nothing in it differing from one copy to
// the next. Applying every migration to a new database costs the server
// about as much CPU as creating the database does, and a package whose
// tests each open a store paid it a hundred times and more.
//
// Tests of migrating, or of opening a new database, use Database instead.
type Template struct {
	prepare func(ctx context.Context, dbURL string) error

	once sync.Once
	name string // the template database, once prepared
	err  error
}

// NewTemplate returns a template that prepare makes on first use, given
// the URL of a new, empty database. prepare must close every connection it
// opened before it returns: PostgreSQL copies no database that a session
// is connected to (it waits a few seconds for them to go, then fails).
func NewTemplate(prepare func(ctx context.Context, dbURL string) error) *Template {
	return &Template{prepare: prepare}
}

// Database creates a copy of the template on the test server, preparing
// the template first if no test has yet, and returns the copy's URL (the
// server's, with the database name in the path and any query parameters
// kept). The copy is dropped when the test ends, as Database's are.
func (tp *Template) Database(t testing.TB) string {
	t.Helper()
	server := ServerURL(t)
	tp.once.Do(func() { tp.name, tp.err = tp.make(server) })
	if tp.err != nil {
		t.Fatal(tp.err)
	}
	u, err := newDatabase(server, tp.name)
	if err != nil {
		t.Fatalf("pgtest: copy the template database: %v", err)
	}
	dropAtEnd(t, server, u)
	return u
}

func (tp *Template) make(server string) (string, error) {
	u, err := newDatabase(server, "")
	if err != nil {
		return "", fmt.Errorf("pgtest: create the template database: %w", err)
	}
	name := databaseName(u)
	if err := tp.prepare(context.Background(), u); err != nil {
		adminExec(server, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
		return "", fmt.Errorf("pgtest: prepare the template database: %w", err)
	}
	return name, nil
}

// Drop drops the template, if a test made it; TestMain calls it once the
// tests have run. An error is only printed: the test server is a
// throwaway one, and a template left on it harms nothing.
func (tp *Template) Drop() {
	if tp.name == "" {
		return
	}
	stmt := `DROP DATABASE IF EXISTS ` + pgx.Identifier{tp.name}.Sanitize() + ` WITH (FORCE)`
	if err := adminExec(os.Getenv(EnvURL), stmt); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: drop the template database: %v\n", err)
	}
}
