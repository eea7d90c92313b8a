package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// storeCommands are the commands that read or write the store, with the
// arguments each needs to get as far as opening it.
var storeCommands = [][]string{
	{"certs", "list"},
	{"certs", "show", "ABCDEF"},
	{"certs", "revoke", "ABCDEF"},
	{"certs", "unhold", "ABCDEF"},
	{"requests", "list"},
	{"requests", "reject", "some-id"},
	{"challenge", "new"},
	{"challenge", "list"},
	{"audit", "list"},
	{"audit", "verify"},
	{"admin", "token", "list"},
	{"admin", "user", "list"},
	{"est", "user", "list"},
	{"est", "user", "remove", "someone"},
}

// Every command that opens the store takes --store (and SCEPTER_STORE),
// and refuses what is not a postgres:// URL without quoting it: it may
// hold a password.
func TestEveryStoreCommandTakesStore(t *testing.T) {
	const bad = "mysql://scepter:s3cr3t-pw@db/scepter"
	for _, args := range storeCommands {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			for _, how := range []string{"flag", "env"} {
				all, err := runWithStoreURL(t, args, how, bad)
				name := map[string]string{"flag": "--store", "env": "SCEPTER_STORE"}[how]
				if err == nil || !strings.Contains(err.Error(), name+": want a postgres:// URL") {
					t.Fatalf("%s: err = %v, want the usage error naming %s", how, err, name)
				}
				if exitCode(err) != 2 {
					t.Errorf("%s: exit code %d, want 2", how, exitCode(err))
				}
				if strings.Contains(all, "s3cr3t") {
					t.Errorf("%s: the password shows: %s", how, all)
				}
			}
		})
	}
}

// runWithStoreURL runs the command args on a new data directory with url
// given as --store (how "flag") or as SCEPTER_STORE ("env"), and returns
// everything it printed, the error's text first, and the error.
func runWithStoreURL(t *testing.T, args []string, how, url string) (string, error) {
	t.Helper()
	a := append(append([]string{}, args...), "--data-dir", t.TempDir())
	vars := map[string]string{}
	if how == "flag" {
		a = append(a, "--store", url)
	} else {
		vars["SCEPTER_STORE"] = url
	}
	e, out, errb := testEnv(vars)
	err := run(context.Background(), e, a)
	var all string
	if err != nil {
		all = err.Error()
	}
	return all + out.String() + errb.String(), err
}

// A store that cannot be reached is a clear error, exit 1, with no
// password in it.
func TestStoreUnreachable(t *testing.T) {
	e, out, errb := testEnv(nil)
	err := run(context.Background(), e, []string{"certs", "list", "--data-dir", t.TempDir(),
		"--store", "postgres://scepter:s3cr3t-pw@127.0.0.1:1/scepter?connect_timeout=2"})
	if err == nil || !strings.Contains(err.Error(), "open store") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v, want an open store error naming the server", err)
	}
	if exitCode(err) != 1 {
		t.Errorf("exit code %d, want 1", exitCode(err))
	}
	if all := err.Error() + out.String() + errb.String(); strings.Contains(all, "s3cr3t") {
		t.Errorf("the password shows: %s", all)
	}
}

// The --store value is redacted wherever flag values are read: help, and
// the configuration digest of the server.started event.
func TestStoreFlagHidesThePassword(t *testing.T) {
	var u storeURL
	if err := u.Set("postgres://scepter:s3cr3t-pw@db:5432/scepter"); err != nil {
		t.Fatal(err)
	}
	if got := u.String(); strings.Contains(got, "s3cr3t") || !strings.Contains(got, "db:5432/scepter") {
		t.Errorf("String() = %q", got)
	}
	digest := func(store string) string {
		t.Helper()
		e, _, _ := testEnv(nil)
		fs, f := newServeFlags(e)
		if err := fs.Parse([]string{"--store", store}); err != nil {
			t.Fatal(err)
		}
		profiles, err := f.profileSet()
		if err != nil {
			t.Fatal(err)
		}
		d, err := configDigest(fs, profiles)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if digest("postgres://scepter:one@db/scepter") != digest("postgres://scepter:two@db/scepter") {
		t.Error("the configuration digest depends on the store's password")
	}
	if digest("postgres://scepter@db/scepter") == digest("postgres://scepter@db/other") {
		t.Error("the configuration digest does not follow the store")
	}
	var sf storeFlags
	sf.dataDir = "/srv/scepter"
	if got := sf.storeName(); got != "sqlite /srv/scepter/scepter.db" {
		t.Errorf("storeName() without --store = %q", got)
	}
	sf.store.url = "postgres://scepter:pw@db:5432/scepter"
	if got := sf.storeName(); got != "postgres://scepter:xxxxx@db:5432/scepter" {
		t.Errorf("storeName() = %q", got)
	}
}

// On PostgreSQL, the CLI commands work on the database a server set up,
// named by --store, SCEPTER_STORE or the config file; a database without
// scepter's schema is refused and left as it is.
func TestStoreCommandsOnPostgres(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	dataDir := t.TempDir() // no scepter.db in it: the store is elsewhere

	e, _, _ := testEnv(nil)
	err := run(ctx, e, []string{"certs", "list", "--data-dir", dataDir, "--store", url})
	if err == nil || !strings.Contains(err.Error(), "no scepter schema") || !strings.Contains(err.Error(), "scepter serve") {
		t.Fatalf("certs list on an empty database: err = %v", err)
	}

	// What `scepter serve --store` does first.
	st, err := openStore(ctx, url, dataDir, false)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	e, out, _ := testEnv(nil)
	if err := run(ctx, e, []string{"challenge", "new", "--data-dir", dataDir, "--store", url, "--ttl", "10m"}); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) == "" {
		t.Fatal("challenge new printed no challenge")
	}

	e, out, _ = testEnv(map[string]string{"SCEPTER_STORE": url})
	if err := run(ctx, e, []string{"challenge", "list", "--data-dir", dataDir, "--json"}); err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal(out.Bytes(), &list); err != nil || len(list) != 1 {
		t.Fatalf("challenge list --json with SCEPTER_STORE: %v, %s", err, out)
	}

	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	if err := os.WriteFile(cfg, []byte("store = \""+url+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, out, _ = testEnv(nil)
	if err := run(ctx, e, []string{"audit", "verify", "--data-dir", dataDir, "--config", cfg}); err != nil {
		t.Fatalf("audit verify with store in the config file: %v", err)
	}
	if !strings.Contains(out.String(), "intact") {
		t.Errorf("audit verify: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "scepter.db")); err == nil {
		t.Error("a SQLite database was created beside the PostgreSQL store")
	}
}

// A data directory whose SQLite inventory holds certificates does not start
// on an empty PostgreSQL store: the inventory would be left behind without
// a word (revoked certificates unknown, the CRL number starting again).
func TestSQLiteInventoryIsNotAbandoned(t *testing.T) {
	url := pgtest.Database(t)
	dir := t.TempDir()
	// The HTTPS certificate is the first certificate of the inventory.
	if _, errOut, err := serveOnceWith(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--challenge", "test"); err != nil {
		t.Fatalf("first start on SQLite: %v\n%s", err, errOut)
	}
	_, errOut, err := serveOnceWith(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--challenge", "test", "--store", url)
	if err == nil || !strings.Contains(err.Error(), "holds the certificates this CA issued") {
		t.Fatalf("start on an empty PostgreSQL beside an SQLite inventory: %v\n%s", err, errOut)
	}
	if !strings.Contains(err.Error(), "--store-restored") {
		t.Errorf("the refusal does not name --store-restored: %v", err)
	}
	// Moved away, as the message says, the start goes on with
	// --store-restored: without it, the store is behind the CRLs this
	// node published.
	if err := os.Rename(filepath.Join(dir, "scepter.db"), filepath.Join(dir, "scepter.db.old")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"scepter.db-wal", "scepter.db-shm", "admin-password.txt"} {
		os.Remove(filepath.Join(dir, f))
	}
	if _, _, err := serveOnceWith(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--challenge", "test", "--store", url); err == nil || !strings.Contains(err.Error(), "--store-restored") {
		t.Fatalf("start after moving the SQLite file away, without --store-restored: %v", err)
	}
	if _, errOut, err := serveOnceWith(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--challenge", "test", "--store", url, "--store-restored"); err != nil {
		t.Fatalf("start after moving the SQLite file away: %v\n%s", err, errOut)
	}
}

// A data directory without scepter.db: the CLI's advice follows what serve
// would do there. Nothing in it: run serve first. A CA a server ran with:
// serve refuses the directory, so restore the database (or pass --store).
// Keys imported, no server yet: either. The path is quoted, as it has a
// space.
func TestNoDatabaseAdvice(t *testing.T) {
	for _, tc := range []struct {
		name          string
		ca, publicURL bool
		want, not     []string
	}{
		{"empty", false, false, []string{"run 'scepter serve --data-dir '"}, []string{"store restore"}},
		{"keys imported", true, false, []string{"no server ran with here yet", "scepter store restore --data-dir '", "--store", "run 'scepter serve --data-dir '"}, nil},
		{"a server ran", true, true, []string{"holds a CA a server ran with", "scepter store restore --data-dir '", "--in BACKUP", "--store", "'scepter serve' refuses"}, []string{"run 'scepter serve"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sp ace")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.ca {
				if _, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, pki.SystemClock{}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.publicURL {
				if err := savePublicURL(dir, "http://127.0.0.1:1"); err != nil {
					t.Fatal(err)
				}
			}
			out, err := runCLI("certs", "list", "--data-dir", dir)
			if err == nil || exitCode(err) != 1 {
				t.Fatalf("certs list: %v (exit %d), want exit 1\n%s", err, exitCode(err), out)
			}
			for _, w := range append(tc.want, "no scepter database in "+dir, shellQuote(dir)) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("%q says %q", err, n)
				}
			}
			// What serve does there agrees.
			if lost := refuseLostSQLite("", dir); (lost != nil) != tc.publicURL {
				t.Errorf("serve's check: %v", lost)
			}
		})
	}
}
