package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// TestBackupAndRestore tries the backup that docs/deployment.md
// prescribes: the database with pg_dump, the key material with `scepter ca
// export-keys --include-root`. After the node and its data directory are
// gone, a new node restored from the two serves the same CA with the whole
// inventory, revocations and an intact audit trail, and issues again.
func TestBackupAndRestore(t *testing.T) {
	t.Parallel()
	pgBin := pgtest.BinDir(t)
	db := pgtest.Database(t)
	s := startServer(t, serverOpts{challenge: "backup-secret", args: []string{"--store", db}})
	var serials []string
	for _, cn := range []string{"CN=kept-1", "CN=kept-2", "CN=revoked-1"} {
		dir := t.TempDir()
		if r := enroll(t, dir, s.URL, s.Challenge, cn, "--key-type", "p256"); r.err != nil {
			t.Fatalf("enroll %s:\n%s", cn, r)
		}
		serials = append(serials, serialHex(readCert(t, filepath.Join(dir, "cert.pem")).SerialNumber))
	}
	s.MustRun("certs", "revoke", serials[2], "--reason", "keyCompromise", "--data-dir", s.DataDir, "--store", db)
	_, caCerts, _ := httpGet(s.URL + "?operation=GetCACert")

	// The backup.
	backup := t.TempDir()
	pass := filepath.Join(backup, "passphrase")
	if err := os.WriteFile(pass, []byte("backup passphrase 0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(backup, "scepter.dump")
	mustRun(t, runOpts{}, filepath.Join(pgBin, "pg_dump"), "--format=custom", "--file", dump, db)
	keys := filepath.Join(backup, "ca-keys.pem")
	s.MustRun("ca", "export-keys", "--include-root", "--data-dir", s.DataDir, "--store", db, "--out", keys, "--passphrase-file", pass)

	// The disaster: the node and its data directory are gone.
	s.Stop()
	if err := os.RemoveAll(s.DataDir); err != nil {
		t.Fatal(err)
	}

	// The restore, into a new database and a new data directory.
	restored := pgtest.Database(t)
	mustRun(t, runOpts{}, filepath.Join(pgBin, "pg_restore"), "--no-owner", "--exit-on-error", "--dbname", restored, dump)
	dataDir := filepath.Join(t.TempDir(), "data")
	mustRun(t, runOpts{}, bin(t), "ca", "import-keys", "--data-dir", dataDir, "--store", restored, "--in", keys, "--passphrase-file", pass)
	n := startServer(t, serverOpts{challenge: "backup-secret", dataDir: dataDir, args: []string{"--store", restored}})

	if _, got, _ := httpGet(n.URL + "?operation=GetCACert"); !bytes.Equal(got, caCerts) {
		t.Error("the restored node serves other CA certificates")
	}
	list := n.ListCerts("--store", restored)
	status := map[string]string{}
	for _, e := range list {
		status[normSerial(e.Serial)] = e.Status
	}
	for i, want := range []string{"valid", "valid", "revoked"} {
		if got := status[serials[i]]; got != want {
			t.Errorf("certificate %s after the restore: status %q, want %q", serials[i], got, want)
		}
	}
	r := n.MustRun("audit", "verify", "--data-dir", dataDir, "--store", restored)
	expectContains(t, "audit verify after the restore", r.stdout, "OK:")
	// The revocation is in the CRL the restored node publishes.
	m := crlURLLine.FindStringSubmatch(n.Output())
	if m == nil {
		t.Fatalf("the restored node printed no CRL URL:\n%s", n.Output())
	}
	code, body, err := httpGet(m[1])
	if err != nil || code != http.StatusOK {
		t.Fatalf("CRL of the restored node: %d %v", code, err)
	}
	crl := filepath.Join(t.TempDir(), "ca.crl")
	if err := os.WriteFile(crl, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, runOpts{}, "openssl", "crl", "-inform", "DER", "-in", crl, "-noout", "-text")
	if text := strings.ToLower(out.stdout); !strings.Contains(text, serials[2]) && !strings.Contains(text, "0"+serials[2]) {
		t.Errorf("the restored node's CRL lacks the revoked serial %s:\n%s", serials[2], out.stdout)
	}
	// And it issues again.
	if r := enroll(t, t.TempDir(), n.URL, n.Challenge, "CN=after-restore", "--key-type", "p256"); r.err != nil {
		t.Fatalf("enroll after the restore:\n%s", r)
	}
}

var crlURLLine = regexp.MustCompile(`(?m)^CRL:\s+(http://\S+\.crl)\s*$`)
