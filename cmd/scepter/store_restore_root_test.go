package main

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// The reviewer's restore with only the root CRL behind: root CRL 1, the
// backup, root CRL 2, the backup restored. store restore says to sign the
// root's next CRL with --store-restored, then start serve (no flag);
// serve without --store-restored refuses, naming the root and that
// command; with it, it starts but serves no root CRL (not CRL 1) until
// root CRL 3 is signed, and then starts without the flag. The data
// directory's path has a space: the commands printed quote it.
func TestRestoreWithOnlyTheRootCRLBehind(t *testing.T) {
	data := filepath.Join(t.TempDir(), "sp ace", "data")
	quoted := "'" + data + "'"
	backup := filepath.Join(t.TempDir(), "bk.db")
	start := func(extra ...string) *inProcessServe {
		t.Helper()
		return serveInProcess(t, nil, append([]string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test",
			"--data-dir", data}, extra...)...)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCLI(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	signRootCRL := func(n string, extra ...string) {
		t.Helper()
		if out := cli(append([]string{"ca", "root", "crl", "--data-dir", data}, extra...)...); !strings.Contains(out, "Root CRL "+n+" signed") {
			t.Fatalf("ca root crl %v: %s, want root CRL %s", extra, out, n)
		}
	}

	s := start()
	if s.ended {
		t.Fatalf("serve: %v", s.err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	signRootCRL("1")
	cli("store", "backup", "--data-dir", data, "--out", backup)
	signRootCRL("2")

	out := cli("store", "restore", "--data-dir", data, "--in", backup)
	for _, want := range []string{"the root (issuer ", "published number 2", "Next: sign the root's next CRL", "scepter ca root crl --data-dir " + quoted + " --store-restored",
		"--revoke ISSUER-ID", "then start scepter serve --data-dir " + quoted + ".", "serves no root CRL"} {
		if !strings.Contains(out, want) {
			t.Errorf("store restore does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "--store-restored, once") {
		t.Errorf("store restore says serve's --store-restored settles it; only ca root crl does:\n%s", out)
	}

	refused := start()
	if !refused.ended || refused.err == nil {
		refused.stop()
		t.Fatal("serve started on a store whose root CRL is older than one signed with its data directory")
	}
	for _, want := range []string{"root CRL 2 was signed", "is number 1", "scepter ca root crl --data-dir " + quoted + " --store-restored", "start with --store-restored"} {
		if !strings.Contains(refused.err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, refused.err)
		}
	}

	s = start("--store-restored")
	if s.ended {
		t.Fatalf("serve --store-restored: %v", s.err)
	}
	if strings.Contains(s.errb.String(), "nothing to acknowledge") {
		t.Errorf("serve says --store-restored had nothing to acknowledge:\n%s", s.errb.String())
	}
	rootURL := rootCRLURL(t, s, data)
	if code, number := fetchRootCRL(t, rootURL); code != http.StatusServiceUnavailable {
		t.Errorf("root CRL of the restored store: %d (number %d), want 503, not the older CRL", code, number)
	}
	signRootCRL("3", "--store-restored")
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, number := fetchRootCRL(t, rootURL)
		if code == http.StatusOK && number == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("root CRL once 3 is signed: %d, number %d", code, number)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	var events []struct{ IssuerID, Outcome string }
	if out := cli("audit", "list", "--data-dir", data, "--type", "store.behind", "--json"); json.Unmarshal([]byte(out[:strings.LastIndex(out, "]")+1]), &events) != nil {
		t.Fatalf("audit list: %s", out)
	}
	var outcomes []string
	for _, ev := range events {
		outcomes = append(outcomes, ev.Outcome)
	}
	slices.Sort(outcomes)
	if !slices.Equal(outcomes, []string{"failure", "success"}) {
		t.Errorf("store.behind events: %+v, want the refused start's and the acknowledged one's", events)
	}

	s = start()
	if s.ended {
		t.Fatalf("serve once root CRL 3 is stored: %v", s.err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// rootCRLURL is where s serves the root's CRL: beside its issuing CA's.
func rootCRLURL(t *testing.T, s *inProcessServe, data string) string {
	t.Helper()
	certs, err := keys.LoadCertFile(filepath.Join(data, "ca", ca.RootCertFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(s.out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "CRL" {
			v = strings.TrimSpace(v)
			return v[:strings.LastIndex(v, "/")+1] + issuerIDOf(certs[0]) + ".crl"
		}
	}
	t.Fatalf("no CRL URL in serve's start-up lines:\n%s", s.out.String())
	return ""
}

// fetchRootCRL returns the status and, when 200, the CRL's number.
func fetchRootCRL(t *testing.T, url string) (int, int64) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0
	}
	list, err := x509.ParseRevocationList(body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, list.Number.Int64()
}

// The root alone behind, and a backup at an older schema: this version's
// ca root crl refuses the store until serve has migrated it, so the Next
// line starts serve with --store-restored first, then signs the root CRL.
// With issuing CAs behind too, serve's --store-restored comes first as
// ever, and the root's CRL is named as a step of its own.
func TestStoreRestoreRootBehindNextSteps(t *testing.T) {
	ctx := context.Background()
	dir, issuerID := storeTestDir(t, "a1")
	certs, err := keys.LoadCertFile(filepath.Join(dir, "ca", ca.RootCertFile))
	if err != nil {
		t.Fatal(err)
	}
	numbers := crl.NewNumbers(filepath.Join(dir, crl.NumbersDir))
	must(t, numbers.Put(issuerIDOf(certs[0]), 2))
	restore := func(bk string) string {
		t.Helper()
		e, stdout, stderr := testEnv(nil)
		if err := run(ctx, e, []string{"store", "restore", "--data-dir", dir, "--in", bk}); err != nil {
			t.Fatalf("store restore: %v\n%s%s", err, stdout, stderr)
		}
		return stdout.String()
	}

	older := filepath.Join(t.TempDir(), "older.db")
	db, err := sql.Open("sqlite", "file:"+older+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	upToPrevious(t, db, sqlite.Migrations(), "sqlite")
	must(t, db.Close())
	said := restore(older)
	for _, want := range []string{"Next: start scepter serve --data-dir " + dir + " --store-restored, which migrates the store",
		"then sign the root's next CRL where the root key is: scepter ca root crl --data-dir " + dir + " --store-restored"} {
		if !strings.Contains(said, want) {
			t.Errorf("store restore of an older schema, the root behind, does not say %q:\n%s", want, said)
		}
	}

	current := filepath.Join(t.TempDir(), "current.db")
	backupSQLiteFile(t, filepath.Join(dir, "scepter.db"), current)
	must(t, numbers.Put(issuerID, 5))
	said = restore(current)
	for _, want := range []string{"Next: start scepter serve --data-dir " + dir + " --store-restored, once",
		"The root's CRL is behind too", "scepter ca root crl --data-dir " + dir + " --store-restored"} {
		if !strings.Contains(said, want) {
			t.Errorf("store restore, the root and the issuing CA behind, does not say %q:\n%s", want, said)
		}
	}
}
