package main

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/pki"
)

// The reviewer's restore: a node serves, a.pem is enrolled, the store is
// backed up, a.pem is revoked (CRL N), b.pem issued and revoked after the
// backup; the old store is put back. The start is refused, naming both
// CRL numbers and the flag, and audited; with --store-restored it starts,
// says so at ERROR and in the audit trail, and numbers its CRL above N.
// a.pem is revoked again by serial, b.pem (unknown to the restored
// inventory) by --cert, and both are on the next CRL.
func TestRestoredStoreIsRefusedThenNumberedAbove(t *testing.T) {
	// Mostly waits on real timers and fsyncs: beside the other such tests,
	// after the package's serial ones.
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	path := func(name string) string { return filepath.Join(dir, name) }
	start := func(extra ...string) *inProcessServe {
		t.Helper()
		return serveInProcess(t, nil, append([]string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test",
			"--data-dir", data}, extra...)...)
	}
	bannerLine := func(s *inProcessServe, key string) string {
		t.Helper()
		for _, line := range strings.Split(s.out.String(), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("no %q in serve's start-up lines:\n%s", key, s.out.String())
		return ""
	}
	// fetchCRL waits (the publisher runs every second) for a CRL that
	// satisfies ok.
	fetchCRL := func(url string, ok func(*x509.RevocationList) bool) *x509.RevocationList {
		t.Helper()
		var last *x509.RevocationList
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				continue
			}
			if last, err = x509.ParseRevocationList(body); err != nil {
				t.Fatal(err)
			}
			if ok(last) {
				return last
			}
		}
		t.Fatalf("no CRL as wanted at %s; the last: %+v", url, last)
		return nil
	}
	lists := func(serials ...string) func(*x509.RevocationList) bool {
		return func(l *x509.RevocationList) bool {
			var got []string
			for _, e := range l.RevokedCertificateEntries {
				got = append(got, e.SerialNumber.Text(16))
			}
			for _, s := range serials {
				if !slices.Contains(got, s) {
					return false
				}
			}
			return true
		}
	}
	enroll := func(s *inProcessServe, name string) string {
		t.Helper()
		if out, err := runCLI("enroll", "--url", bannerLine(s, "SCEP URL"), "--challenge", "test", "--subject", "CN="+name,
			"--key-type", "p256", "--out", path(name+".pem"), "--key-out", path(name+".key")); err != nil {
			t.Fatalf("enroll %s: %v\n%s", name, err, out)
		}
		return readCertSerial(t, path(name+".pem"))
	}
	revoke := func(args ...string) string {
		t.Helper()
		out, err := runCLI(append([]string{"certs", "revoke", "--data-dir", data, "--reason", "keyCompromise"}, args...)...)
		if err != nil {
			t.Fatalf("certs revoke %v: %v\n%s", args, err, out)
		}
		return out
	}

	s := start()
	a := enroll(s, "a")
	backupSQLiteFile(t, filepath.Join(data, "scepter.db"), path("bk.db"))
	revoke(a)
	b := enroll(s, "b")
	revoke(b)
	published := fetchCRL(bannerLine(s, "CRL"), lists(a, b)).Number.Int64()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// The restore: the backup copied over the database.
	restoreSQLiteFile(t, path("bk.db"), filepath.Join(data, "scepter.db"))

	refused := start()
	if !refused.ended || refused.err == nil {
		t.Fatal("serve started on a store older than the CRLs it published")
	}
	msg := refused.err.Error()
	for _, want := range []string{"--store-restored", "is number 1", "published number " + big.NewInt(published).String(),
		"restored from an older copy", "scepter certs revoke"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal does not say %q: %s", want, msg)
		}
	}

	s = start("--store-restored")
	if s.ended {
		t.Fatalf("serve --store-restored: %v\n%s", s.err, s.errb.String())
	}
	if logs := s.errb.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "the store is older than this data directory") {
		t.Errorf("no ERROR about the restored store in the log:\n%s", logs)
	}
	restarted := fetchCRL(bannerLine(s, "CRL"), func(*x509.RevocationList) bool { return true })
	if n := restarted.Number.Int64(); n <= published || len(restarted.RevokedCertificateEntries) != 0 {
		t.Errorf("after the restore: CRL %d with %d entries, want a number above %d and none (the revocations are lost)",
			n, len(restarted.RevokedCertificateEntries), published)
	}
	out, err := runCLI("audit", "list", "--data-dir", data, "--type", "store.behind", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var events []struct{ Type, Outcome, Reason string }
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "]")+1]), &events); err != nil {
		t.Fatalf("audit list: %v\n%s", err, out)
	}
	var outcomes []string
	for _, ev := range events {
		outcomes = append(outcomes, ev.Outcome)
	}
	slices.Sort(outcomes)
	if !slices.Equal(outcomes, []string{"failure", "success"}) {
		t.Errorf("store.behind events: %v, want the refused start's (failure) and the acknowledged one's (success):\n%s", outcomes, out)
	}

	// a.pem is in the restored inventory, valid: revoked again by serial.
	// b.pem is not: by serial it is unknown, by --cert it is recorded and
	// revoked.
	revoke(a)
	if out, err := runCLI("certs", "revoke", "--data-dir", data, b); err == nil || !strings.Contains(out+err.Error(), "no certificate with serial") {
		t.Errorf("certs revoke of b.pem by serial after the restore: %v\n%s", err, out)
	}
	if out := revoke("--cert", path("b.pem")); !strings.Contains(out, "recorded "+pki.ShownSerial(b)) || !strings.Contains(out, "revoked "+pki.ShownSerial(b)) {
		t.Errorf("certs revoke --cert b.pem: %s", out)
	}
	fetchCRL(bannerLine(s, "CRL"), lists(a, b))
	if out, err := runCLI("certs", "show", "--data-dir", data, b); err != nil || !strings.Contains(out, "revoked") {
		t.Errorf("certs show b.pem: %v\n%s", err, out)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// Once a CRL is numbered above the mark, the next start needs no flag;
	// given all the same, it is warned about.
	s = start()
	if s.ended {
		t.Fatalf("serve after the acknowledged restore: %v", s.err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s = start("--store-restored")
	if s.ended || !strings.Contains(s.errb.String(), "it had nothing to acknowledge") {
		t.Errorf("--store-restored on a store not behind: ended %v (%v), log:\n%s", s.ended, s.err, s.errb.String())
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// Only on the command line: left in the environment (or the config
	// file) it would acknowledge a later restore unseen.
	envStart := serveInProcess(t, map[string]string{"SCEPTER_STORE_RESTORED": "1"}, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data)
	if !envStart.ended || exitCode(envStart.err) != 2 || !strings.Contains(envStart.err.Error(), "taken only on the command line") {
		t.Errorf("SCEPTER_STORE_RESTORED=1: ended %v, %v (exit %d); want refused, exit 2", envStart.ended, envStart.err, exitCode(envStart.err))
	}

	if entries, err := os.ReadDir(filepath.Join(data, crl.NumbersDir)); err != nil || len(entries) == 0 {
		t.Errorf("%s: %v, %v", crl.NumbersDir, entries, err)
	}
}
