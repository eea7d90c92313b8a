// Package pgtest gives tests a fresh PostgreSQL database of their own on the
// throwaway server named by $SCEPTER_TEST_POSTGRES_URL (a superuser URL,
// postgres://user@127.0.0.1:PORT/postgres; scripts/test starts such a server
// and sets it). Without it the tests that need one skip, unless
// $SCEPTER_E2E_REQUIRE=1, when they fail. A test that stops and starts
// PostgreSQL starts a private server of its own with StartServer.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL is the environment variable naming the test server.
const EnvURL = "SCEPTER_TEST_POSTGRES_URL"

// ServerURL returns $SCEPTER_TEST_POSTGRES_URL, or ends the test: a skip,
// or a failure when $SCEPTER_E2E_REQUIRE=1.
func ServerURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv("SCEPTER_E2E_REQUIRE") == "1" {
			t.Fatalf("$%s is not set, and SCEPTER_E2E_REQUIRE=1: scripts/test starts a throwaway PostgreSQL and sets it", EnvURL)
		}
		t.Skipf("$%s is not set (a superuser URL of a throwaway PostgreSQL); set SCEPTER_E2E_REQUIRE=1 to make this a failure", EnvURL)
	}
	return u
}

// Database creates a database with a random name on the test server and
// returns its URL (the server's, with the database name in the path and
// any query parameters kept). It is dropped when the test and its
// subtests end, after the cleanups registered later (a store's Close), and
// connections still open to it then are terminated.
func Database(t testing.TB) string {
	t.Helper()
	return createDatabase(t, ServerURL(t), true)
}

// WithParam returns dbURL with a query parameter set (pool_max_conns=8).
func WithParam(t testing.TB, dbURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// timeout bounds one administrative statement on the test server.
const timeout = time.Minute

// admin runs one statement on the server's own database.
func admin(t testing.TB, server, stmt string) {
	t.Helper()
	if err := adminExec(server, stmt); err != nil {
		t.Fatal(err)
	}
}

func adminExec(server, stmt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return fmt.Errorf("connect to the test PostgreSQL ($%s): %w", EnvURL, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// createDatabase makes a database with a random name on the server at
// serverURL and returns its URL (the server's, with the database name in
// the path and any query parameters kept). With drop, it is dropped when
// the test ends, connections still open to it terminated.
func createDatabase(t testing.TB, serverURL string, drop bool) string {
	t.Helper()
	u, err := newDatabase(serverURL, "")
	if err != nil {
		t.Fatal(err)
	}
	if drop {
		dropAtEnd(t, serverURL, u)
	}
	return u
}

// newDatabase makes a database with a random name on the server at
// serverURL, a copy of template when it is not "" (else of PostgreSQL's
// default, template1), and returns its URL.
func newDatabase(serverURL, template string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("$%s must be a postgres:// URL", EnvURL)
	}
	var b [8]byte
	rand.Read(b[:])
	name := pgx.Identifier{"scepter_test_" + hex.EncodeToString(b[:])}
	stmt := `CREATE DATABASE ` + name.Sanitize()
	if template != "" {
		stmt += ` TEMPLATE ` + pgx.Identifier{template}.Sanitize()
	}
	if err := adminExec(serverURL, stmt); err != nil {
		return "", err
	}
	u.Path = "/" + name[0]
	return u.String(), nil
}

// dropAtEnd drops the database of dbURL when the test ends, connections
// still open to it terminated.
func dropAtEnd(t testing.TB, serverURL, dbURL string) {
	t.Cleanup(func() {
		name := pgx.Identifier{databaseName(dbURL)}
		admin(t, serverURL, `DROP DATABASE IF EXISTS `+name.Sanitize()+` WITH (FORCE)`)
	})
}

// databaseName is the database name in the path of a URL newDatabase
// returned.
func databaseName(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return ""
	}
	return u.Path[1:]
}
