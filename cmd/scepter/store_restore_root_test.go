package main

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
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
// backup, root CRL 2 listing an issuing CA, the backup restored. The
// restore carries root CRL 2 forward from the database it replaces, so
// serve starts without --store-restored and serves root CRL 2, the CA
// listed. Restored again over a database whose root CRL 2 is damaged,
// nothing is carried: store restore says to sign the root's next CRL
// with --store-restored, then start serve (no flag); serve without
// --store-restored refuses, naming the root and that command; with it,
// it starts but serves no root CRL (not CRL 1) until root CRL 3 is
// signed, and then starts without the flag. The data directory's path
// has a space: the commands printed quote it.
func TestRestoreWithOnlyTheRootCRLBehind(t *testing.T) {
	// Mostly waits on real timers and fsyncs: beside the other such tests,
	// after the package's serial ones.
	t.Parallel()
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
	waitForRootCRL := func(url string, want int64) *x509.RevocationList {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, list := fetchRootCRLList(t, url)
			if code == http.StatusOK && list.Number.Int64() == want {
				return list
			}
			if time.Now().After(deadline) {
				t.Fatalf("root CRL: %d, %+v; want number %d", code, list, want)
			}
			time.Sleep(200 * time.Millisecond)
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
	retired := otherIssuingCA(t, data, "retired issuing CA", 77)
	signRootCRL("2", "--revoke-cert", writeCerts(t, retired), "--reason", "cACompromise")

	out := cli("store", "restore", "--data-dir", data, "--in", backup)
	for _, want := range []string{"the root CRL(s) signed after the backup, number 2", "Next: start scepter serve --data-dir " + quoted + ".\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("store restore does not say %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"sign the root's next CRL", "--store-restored", "older than the CRLs this data directory published"} {
		if strings.Contains(out, not) {
			t.Errorf("store restore says %q, though root CRL 2 was carried forward:\n%s", not, out)
		}
	}
	s = start()
	if s.ended {
		t.Fatalf("serve on the restored store, root CRL 2 carried forward: %v", s.err)
	}
	rootURL := rootCRLURL(t, s, data)
	if list := waitForRootCRL(rootURL, 2); !slices.ContainsFunc(list.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool {
		return e.SerialNumber.Cmp(retired.SerialNumber) == 0
	}) {
		t.Errorf("the root CRL served after the restore does not list the issuing CA revoked after the backup: %+v", list.RevokedCertificateEntries)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// Again, over a database whose root CRL 2 is not what the root signed.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE crls SET der = CAST('damaged' AS BLOB) WHERE number = 2 AND issuer_id = ?`, issuerIDOf(rootCert(t, data))); err != nil {
		t.Fatal(err)
	}
	must(t, db.Close())
	out = cli("store", "restore", "--data-dir", data, "--in", backup)
	for _, want := range []string{"root CRL 2 was not carried forward", "the root (issuer ", "published number 2", "Next: sign the root's next CRL", "scepter ca root crl --data-dir " + quoted + " --store-restored",
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
	rootURL = rootCRLURL(t, s, data)
	if code, number := fetchRootCRL(t, rootURL); code != http.StatusServiceUnavailable {
		t.Errorf("root CRL of the restored store: %d (number %d), want 503, not the older CRL", code, number)
	}
	signRootCRL("3", "--store-restored")
	waitForRootCRL(rootURL, 3)
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

// rootCert is the data directory's root certificate.
func rootCert(t *testing.T, data string) *x509.Certificate {
	t.Helper()
	certs, err := keys.LoadCertFile(filepath.Join(data, "ca", ca.RootCertFile))
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// fetchRootCRLList returns the status and, when 200, the CRL.
func fetchRootCRLList(t *testing.T, url string) (int, *x509.RevocationList) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	list, err := x509.ParseRevocationList(body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, list
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

// store restore carries the root CRLs signed after the backup forward
// from the database it replaces, and then says nothing of signing the
// root's next CRL first; when it cannot (the replaced database cannot be
// read, or its root CRL is not what the root signed), the store stays
// behind the root's mark and the restore says to sign the next one.
func TestStoreRestoreCarriesTheRootCRL(t *testing.T) {
	for _, tt := range []struct {
		name string
		// damage changes the database the restore replaces.
		damage      func(t *testing.T, db, rootID string)
		wantCarried bool
		wantSaid    []string
	}{
		{"intact", func(*testing.T, string, string) {}, true,
			[]string{"the root CRL(s) signed after the backup, number 2 (each checked against the root certificate)", "Next: start scepter serve --data-dir "}},
		{"root CRL damaged", func(t *testing.T, db, rootID string) {
			sdb, err := sql.Open("sqlite", "file:"+db)
			if err != nil {
				t.Fatal(err)
			}
			defer sdb.Close()
			if _, err := sdb.Exec(`UPDATE crls SET der = CAST('damaged' AS BLOB) WHERE issuer_id = ? AND number = 2`, rootID); err != nil {
				t.Fatal(err)
			}
		}, false, []string{"warning: the replaced database's root CRL 2 was not carried forward: it cannot be read as a CRL", "Next: sign the root's next CRL"}},
		{"unreadable", func(t *testing.T, db, _ string) {
			must(t, os.WriteFile(db, []byte("overwritten by accident"), 0o600))
			os.Remove(db + "-wal")
			os.Remove(db + "-shm")
		}, false, []string{"the store's newest CRL is number 1, this data directory published number 2", "Next: sign the root's next CRL"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir, _ := storeTestDir(t, "a1")
			rootID := issuerIDOf(rootCert(t, dir))
			if out, err := runCLI("ca", "root", "crl", "--data-dir", dir); err != nil {
				t.Fatalf("ca root crl: %v\n%s", err, out)
			}
			bk := filepath.Join(t.TempDir(), "bk.db")
			if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
				t.Fatalf("store backup: %v\n%s", err, out)
			}
			if out, err := runCLI("ca", "root", "crl", "--data-dir", dir); err != nil {
				t.Fatalf("ca root crl: %v\n%s", err, out)
			}
			db := filepath.Join(dir, "scepter.db")
			tt.damage(t, db, rootID)

			e, stdout, stderr := testEnv(nil)
			if err := run(ctx, e, []string{"store", "restore", "--data-dir", dir, "--in", bk}); err != nil {
				t.Fatalf("store restore: %v\n%s%s", err, stdout, stderr)
			}
			said := stdout.String() + stderr.String()
			for _, want := range tt.wantSaid {
				if !strings.Contains(said, want) {
					t.Errorf("store restore does not say %q:\n%s", want, said)
				}
			}
			if rootAdvice := strings.Contains(said, "sign the root's next CRL"); rootAdvice == tt.wantCarried {
				t.Errorf("store restore advises signing the root's next CRL: %v, root CRL 2 carried: %v\n%s", rootAdvice, tt.wantCarried, said)
			}
			st, err := sqlite.Open(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			want := int64(1)
			if tt.wantCarried {
				want = 2
			}
			if n, err := st.LatestCRLNumber(ctx, rootID); err != nil || n != want {
				t.Errorf("the restored store's newest root CRL: %d, %v; want %d", n, err, want)
			}
		})
	}
}
