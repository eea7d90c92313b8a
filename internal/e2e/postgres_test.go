package e2e

// The end-to-end tests on PostgreSQL. A server started by startServer runs
// on a fresh database of the test PostgreSQL ($SCEPTER_TEST_POSTGRES_URL,
// which scripts/test starts) when
//
//   - the test runs under TestOnPostgres, which runs a representative set of
//     the tests of this package again, unchanged, on PostgreSQL; or
//   - SCEPTER_E2E_STORE=postgres, which puts every test of the package on
//     PostgreSQL (go test ./internal/e2e/ a second time, by hand).
//
// The CLI commands a test runs on such a server's --data-dir find its
// --store through SCEPTER_STORE (run adds it, see storeEnv), so test bodies
// need not know which store they run on.

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// EnvE2EStore, set to "postgres", runs every server of the package on
// PostgreSQL.
const envE2EStore = "SCEPTER_E2E_STORE"

// stores maps a server's data directory to its --store URL, for the CLI
// commands run on that directory and for a server started again on it.
var (
	storesMu sync.Mutex
	stores   = map[string]string{}
)

// onPostgres reports whether t's servers run on PostgreSQL.
func onPostgres(t testing.TB) bool {
	return os.Getenv(envE2EStore) == "postgres" || strings.HasPrefix(t.Name(), "TestOnPostgres/")
}

// serverStore returns the --store of a server about to start on dataDir:
// o.store when set, the one a server on dataDir used before, a fresh
// database when t runs on PostgreSQL, or "" (SQLite in the data directory).
func serverStore(t *testing.T, o serverOpts, dataDir string) string {
	t.Helper()
	storesMu.Lock()
	known, ok := stores[dataDir]
	storesMu.Unlock()
	url := o.store
	if a := storeArg(o.args); a != "" {
		// The test passes --store itself: only remembered, for the CLI
		// commands on dataDir.
		register(t, dataDir, a)
		return ""
	}
	switch {
	case url != "":
	case ok:
		return known
	case onPostgres(t):
		url = pgtest.Database(t)
	default:
		return ""
	}
	register(t, dataDir, url)
	return url
}

// register remembers the store of a data directory until t ends.
func register(t *testing.T, dataDir, url string) {
	storesMu.Lock()
	stores[dataDir] = url
	storesMu.Unlock()
	t.Cleanup(func() {
		storesMu.Lock()
		delete(stores, dataDir)
		storesMu.Unlock()
	})
}

// storeArg is the value of a --store flag in args ("" when none).
func storeArg(args []string) string {
	return flagValue(args, "store")
}

// storeEnv is SCEPTER_STORE for a command whose --data-dir is that of a
// server on PostgreSQL (nothing otherwise).
func storeEnv(args []string) []string {
	dir := flagValue(args, "data-dir")
	if dir == "" {
		return nil
	}
	storesMu.Lock()
	url, ok := stores[dir]
	storesMu.Unlock()
	if !ok {
		return nil
	}
	return []string{"SCEPTER_STORE=" + url}
}

// flagValue is the last value of --name (or -name, --name=V) in args.
func flagValue(args []string, name string) string {
	var v string
	for i, a := range args {
		switch {
		case (a == "--"+name || a == "-"+name) && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "--"+name+"="):
			v = strings.TrimPrefix(a, "--"+name+"=")
		case strings.HasPrefix(a, "-"+name+"="):
			v = strings.TrimPrefix(a, "-"+name+"=")
		}
	}
	return v
}

// tamperAuditOf edits the revocation event of a serial in the store of the
// server that ran on dataDir, as someone with access to the database could,
// and returns its id.
func tamperAuditOf(t *testing.T, dataDir, serial string) int64 {
	t.Helper()
	storesMu.Lock()
	url, ok := stores[dataDir]
	storesMu.Unlock()
	if !ok {
		return tamperAudit(t, filepath.Join(dataDir, "scepter.db"), serial)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var id int64
	if err := conn.QueryRow(ctx, `SELECT id FROM audit_events WHERE type = 'certificate.revoked' AND serial_hex = $1`, serial).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE audit_events SET reason = 'superseded' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestOnPostgres runs a representative set of the end-to-end tests again,
// unchanged, with the server on PostgreSQL: SCEP enrollment and renewal by
// our client and by micromdm's and strongSwan's, one-time challenges (also
// bound ones made by the CLI), approval, a restart on the same store,
// concurrent enrollments, the inventory, EST with curl and openssl and its
// authentication matrix (EST users in the store), revocation with CRL,
// OCSP and the audit trail, a CA rollover, expiry notifications, metrics
// and health, and the admin API. The rest (the agent, the console,
// certmonger, floods) runs on SQLite only, or on PostgreSQL too with
// SCEPTER_E2E_STORE=postgres go test ./internal/e2e/ (all of it passes
// there; scripts/test leaves it out: it about doubles the package's time).
func TestOnPostgres(t *testing.T) {
	if os.Getenv(envE2EStore) == "postgres" {
		t.Skipf("%s=postgres: every test of the package runs on PostgreSQL already", envE2EStore)
	}
	pgtest.ServerURL(t) // skips, or fails when required, without a server
	t.Parallel()
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"ServeStart", TestServeStart},
		{"ScepterEnroll", TestScepterEnroll},
		{"RenewalByRealClients", TestRenewalByRealClients},
		{"MicromdmScepclient", TestMicromdmScepclient},
		{"StrongswanPKI", TestStrongswanPKI},
		{"OneTimeChallenge", TestOneTimeChallenge},
		{"BoundChallengeFromTheCLI", TestBoundChallengeFromTheCLI},
		{"PendingApproval", TestPendingApproval},
		{"GeneratedChallengeAndRestart", TestGeneratedChallengeAndRestart},
		{"ParallelEnrollments", TestParallelEnrollments},
		{"Inventory", TestInventory},
		{"ESTCurlOpenSSL", TestESTCurlOpenSSL},
		{"ESTAuthMatrix", TestESTAuthMatrix},
		{"RevocationEndToEnd", TestRevocationEndToEnd},
		{"CARollover", TestCARollover},
		{"NotifyExpiry", TestNotifyExpiry},
		{"MetricsAndHealth", TestMetricsAndHealth},
		{"AdminAPI", TestAdminAPI},
	} {
		t.Run(tc.name, tc.test)
	}
}

// The server reports not ready while PostgreSQL is down and recovers by
// itself when it is back; enrollments during the outage fail cleanly, the
// server does not exit, and nothing acknowledged before is lost. It stops a
// private PostgreSQL of its own: the shared test server is never stopped.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	pg := pgtest.StartServer(t)
	db := pg.Database(t)
	const challenge = "outage-challenge-7f3a9c"
	s := startServer(t, serverOpts{challenge: challenge, store: db})
	expectContains(t, "serve banner", s.Output(), "Store:               postgres://postgres@127.0.0.1:")
	ready := func(want int) {
		t.Helper()
		waitReadyz(t, s.Base, want, 45*time.Second)
	}
	ready(http.StatusOK)

	enrolled := map[string]*x509.Certificate{}
	enrollOne := func(name string) result {
		t.Helper()
		dir := t.TempDir()
		r := enroll(t, dir, s.URL, challenge, "CN="+name)
		if r.err == nil {
			c := s.Verify(filepath.Join(dir, "cert.pem"))
			enrolled[name] = c
		}
		return r
	}
	for i := range 3 {
		if r := enrollOne(fmt.Sprintf("before-%d", i)); r.err != nil {
			t.Fatalf("enrollment before the outage:\n%s", r)
		}
	}

	pg.Stop(t)
	ready(http.StatusServiceUnavailable)
	for i := range 2 {
		r := enrollOne(fmt.Sprintf("during-%d", i))
		if r.err == nil {
			t.Fatalf("an enrollment succeeded while PostgreSQL was down:\n%s", r)
		}
		// A refusal the client can read (a SCEP FAILURE, or a 5xx
		// without the server's internals), never the store's error.
		msg := r.stdout + r.stderr
		for _, leak := range []string{"postgres", "dial", "connection refused", "SQLSTATE", "127.0.0.1:" + portOf(t, db)} {
			if strings.Contains(msg, leak) {
				t.Errorf("the client was shown the server's internals (%q):\n%s", leak, r)
			}
		}
		// 503 with Retry-After, never a FAILURE (final for a device) or
		// a 500.
		if !strings.Contains(msg, "503") {
			t.Errorf("the client was not told 503 (come back later):\n%s", r)
		}
		t.Logf("during the outage the client said: %s", strings.TrimSpace(msg))
	}
	if s.p.exited() {
		t.Fatalf("scepter serve exited while PostgreSQL was down: %v\n%s", s.p.err, s.Output())
	}
	// What does not need the store still answers.
	if code, _, err := httpGet(s.URL + "?operation=GetCACaps"); err != nil || code != http.StatusOK {
		t.Errorf("GetCACaps during the outage: %d, %v", code, err)
	}

	pg.Start(t)
	ready(http.StatusOK)
	for i := range 3 {
		if r := enrollOne(fmt.Sprintf("after-%d", i)); r.err != nil {
			t.Fatalf("enrollment after PostgreSQL came back:\n%s", r)
		}
	}

	// Everything acknowledged, before and after, is in the inventory
	// exactly once, and the audit trail is one intact chain.
	list := s.ListCerts()
	for name, c := range enrolled {
		n := 0
		for _, e := range list {
			if normSerial(e.Serial) == serialHex(c.SerialNumber) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s (serial %s) is in the inventory %d times", name, serialHex(c.SerialNumber), n)
		}
	}
	if len(list) != len(enrolled) {
		t.Errorf("the inventory holds %d device certificates, want the %d enrolled: %+v", len(list), len(enrolled), list)
	}
	r := s.MustRun("audit", "verify", "--data-dir", s.DataDir)
	expectContains(t, "audit verify", r.stdout, "OK:")
	if strings.Contains(s.Output(), "panic") {
		t.Errorf("the server panicked:\n%s", s.Output())
	}
}

// portOf is the port of a postgres:// URL.
func portOf(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(cfg.Port)
}
