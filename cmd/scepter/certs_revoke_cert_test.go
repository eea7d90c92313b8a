package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// `certs revoke --cert FILE` revokes a certificate this CA issued that the
// inventory lacks (a store restored from a copy older than it): it is
// recorded, audited, and revoked; one signed by another key under our
// issuer's name, or by another CA, is refused.
func TestCertsRevokeCertNotInTheInventory(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	path := func(name string) string { return filepath.Join(dir, name) }
	s := serveInProcess(t, nil, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data)
	if s.ended {
		t.Fatalf("serve: %v\n%s", s.err, s.errb.String())
	}
	var scepURL string
	for _, line := range strings.Split(s.out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "SCEP URL" {
			scepURL = strings.TrimSpace(v)
		}
	}
	backupSQLiteFile(t, filepath.Join(data, "scepter.db"), path("bk.db"))
	if out, err := runCLI("enroll", "--url", scepURL, "--challenge", "test", "--subject", "CN=b", "--key-type", "p256",
		"--out", path("b.pem"), "--key-out", path("b.key")); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	b := parseCertFile(t, path("b.pem"))
	serial := pki.SerialText(b.SerialNumber) // as the CLI shows it, and takes it
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	restoreSQLiteFile(t, path("bk.db"), filepath.Join(data, "scepter.db"))

	if out, err := runCLI("certs", "revoke", "--data-dir", data, serial); err == nil || !strings.Contains(err.Error(), "no certificate with serial") {
		t.Fatalf("certs revoke by serial of a certificate the inventory lacks: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name string
		der  []byte
	}{
		{"signed by another key under our issuer's name", makeCert(t, pkix.Name{CommonName: "forged"}, b.Issuer, b.AuthorityKeyId)},
		{"another CA's", makeCert(t, pkix.Name{CommonName: "other"}, pkix.Name{CommonName: "Other CA"}, nil)},
	} {
		file := path("refused.pem")
		writePEM(t, file, c.der)
		if out, err := runCLI("certs", "revoke", "--data-dir", data, "--cert", file); err == nil || !strings.Contains(err.Error(), "not issued by this CA") {
			t.Errorf("certs revoke --cert of a certificate %s: %v\n%s", c.name, err, out)
		}
	}
	if out, err := runCLI("certs", "revoke", "--data-dir", data, "--cert", path("b.pem"), serial); err == nil {
		t.Errorf("certs revoke --cert with a serial too: accepted\n%s", out)
	}

	out, err := runCLI("certs", "revoke", "--data-dir", data, "--cert", path("b.pem"), "--reason", "keyCompromise")
	if err != nil || !strings.Contains(out, "recorded "+serial) || !strings.Contains(out, "revoked "+serial) {
		t.Fatalf("certs revoke --cert: %v\n%s", err, out)
	}
	if out, err := runCLI("certs", "show", "--data-dir", data, serial); err != nil || !strings.Contains(out, "revoked") || !strings.Contains(out, "imported") {
		t.Errorf("certs show after --cert: %v\n%s", err, out)
	}
	if out, err := runCLI("audit", "list", "--data-dir", data, "--serial", serial); err != nil ||
		!strings.Contains(out, "certificate.recorded") || !strings.Contains(out, "certificate.revoked") {
		t.Errorf("audit list --serial: %v\n%s", err, out)
	}
	// Again: already revoked, nothing recorded twice.
	if out, err := runCLI("certs", "revoke", "--data-dir", data, "--cert", path("b.pem"), "--reason", "keyCompromise"); err != nil ||
		strings.Contains(out, "recorded") || !strings.Contains(out, "already revoked") {
		t.Errorf("certs revoke --cert again: %v\n%s", err, out)
	}
}

// restoreSQLiteFile puts a backup in place of a stopped server's store.
func restoreSQLiteFile(t *testing.T, backup, db string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(db + suffix); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	copyFile(t, backup, db)
}

// backupSQLiteFile copies a live store as docs/deployment.md says
// (sqlite3's .backup; VACUUM INTO makes the same consistent copy).
func backupSQLiteFile(t *testing.T, from, to string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+from+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`VACUUM INTO ?`, to); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func parseCertFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cert, err := readCertFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func readCertSerial(t *testing.T, path string) string {
	t.Helper()
	return parseCertFile(t, path).SerialNumber.Text(16)
}

// makeCert signs a certificate for subject with a new key, naming issuer
// (and its key identifier) as its issuer: no CA of ours signed it.
func makeCert(t *testing.T, subject, issuer pkix.Name, authorityKeyID []byte) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := pki.SystemClock{}.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x5eed), Subject: subject, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	parent := &x509.Certificate{Subject: issuer, SubjectKeyId: authorityKeyID}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A certificate our issuing CA signed that reuses the serial of one the
// inventory records, but is not that certificate, is refused: the issuing
// CA's key signed something it never recorded, so it is to be treated as
// compromised; the stored certificate is not revoked in its place.
func TestCertsRevokeCertForgedSerial(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	path := func(name string) string { return filepath.Join(dir, name) }
	s := serveInProcess(t, nil, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data)
	if s.ended {
		t.Fatalf("serve: %v\n%s", s.err, s.errb.String())
	}
	var scepURL string
	for _, line := range strings.Split(s.out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "SCEP URL" {
			scepURL = strings.TrimSpace(v)
		}
	}
	if out, err := runCLI("enroll", "--url", scepURL, "--challenge", "test", "--subject", "CN=b", "--key-type", "p256",
		"--out", path("b.pem"), "--key-out", path("b.key")); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	b := parseCertFile(t, path("b.pem"))
	serial := pki.SerialText(b.SerialNumber) // as the CLI shows it, and takes it

	// Forged with the issuing CA's key (as one who stole it would): b's
	// serial, another subject and key.
	authority, err := ca.Load(data, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: b.SerialNumber, Subject: pkix.Name{CommonName: "forged"},
		NotBefore: b.NotBefore, NotAfter: b.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	forged, err := x509.CreateCertificate(rand.Reader, tmpl, authority.Issuer.Cert, &key.PublicKey, authority.Issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path("forged.pem"), forged)

	out, err := runCLI("certs", "revoke", "--data-dir", data, "--cert", path("forged.pem"), "--reason", "keyCompromise")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "is not the certificate this CA issued with serial "+serial) ||
		!strings.Contains(err.Error(), "never recorded") || !strings.Contains(err.Error(), "--revoke "+authority.Issuer.ID+" --reason cACompromise") {
		t.Fatalf("certs revoke --cert of a forged certificate reusing a stored serial: %v\n%s", err, out)
	}
	if out, err := runCLI("certs", "show", "--data-dir", data, serial); err != nil || strings.Contains(out, "revoked") {
		t.Errorf("the stored certificate after the refusal: %v\n%s", err, out)
	}
	// The genuine file still revokes it.
	if out, err := runCLI("certs", "revoke", "--data-dir", data, "--cert", path("b.pem"), "--reason", "keyCompromise"); err != nil ||
		!strings.Contains(out, "revoked "+serial) {
		t.Errorf("certs revoke --cert of the genuine certificate: %v\n%s", err, out)
	}
}

// --cert takes a file with exactly one certificate, PEM or DER; a key
// beside it in the PEM is skipped, a second certificate refused.
func TestReadCertFile(t *testing.T) {
	dir := t.TempDir()
	der := makeCert(t, pkix.Name{CommonName: "one"}, pkix.Name{CommonName: "ca"}, []byte{1})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0}})
	for _, tc := range []struct {
		name    string
		content []byte
		wantErr string
	}{
		{"pem", certPEM, ""},
		{"der", der, ""},
		{"key and cert", append(slices.Clone(keyPEM), certPEM...), ""},
		{"two certs", append(slices.Clone(certPEM), certPEM...), "holds 2 certificates"},
		{"key only", keyPEM, "--cert: " + filepath.Join(dir, "key-only") + ": no certificate found"},
		{"garbage", []byte("not a certificate"), "--cert: " + filepath.Join(dir, "garbage") + ": no certificate found"},
		{"missing", nil, "--cert: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if tc.content != nil {
				if err := os.WriteFile(p, tc.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cert, err := readCertFile(p)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("readCertFile: %v", err)
			case tc.wantErr == "" && cert.Subject.CommonName != "one":
				t.Fatalf("got %v", cert.Subject)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), "keys:"):
				// The package's name tells the user nothing (r118).
				t.Errorf("err = %v, want it without the package's prefix", err)
			}
		})
	}
}

// `certs revoke --cert FILE` revokes an expired certificate as revoking
// it by serial does, where it refused it ("nothing to revoke"): for
// keyCompromise the key is recorded and its live certificates revoked
// with it; an expired one the inventory lacks is recorded first (r110 D3).
func TestCertsRevokeCertExpired(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	path := func(name string) string { return filepath.Join(dir, name) }
	s := serveInProcess(t, nil, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data)
	if s.ended {
		t.Fatalf("serve: %v\n%s", s.err, s.errb.String())
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	clock := pki.SystemClock{} // the CLI's
	authority, err := ca.Load(data, clock)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now().Truncate(time.Second)
	// sign makes a certificate of the issuing CA for key, recorded in the
	// inventory when record is set.
	serialNo := int64(0x7e57)
	sign := func(cn string, key *ecdsa.PrivateKey, notAfter time.Time, record bool) (file, shownSerial string) {
		t.Helper()
		serialNo++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serialNo), Subject: pkix.Name{CommonName: cn},
			NotBefore: authority.Issuer.Cert.NotBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, authority.Issuer.Cert, &key.PublicKey, authority.Issuer.Signer)
		if err != nil {
			t.Fatal(err)
		}
		file = path(cn + ".pem")
		writePEM(t, file, der)
		if record {
			recordCert(t, data, authority.Issuer.ID, der, now.Add(-time.Hour))
		}
		return file, pki.SerialText(big.NewInt(serialNo))
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	leaked, other, lost := newKey(), newKey(), newKey()
	expired, expiredSerial := sign("expired-leaked", leaked, now.Add(-time.Second), true)
	_, liveSerial := sign("live-leaked", leaked, now.Add(24*time.Hour), true)
	superseded, supersededSerial := sign("expired-superseded", other, now.Add(-time.Second), true)
	missing, missingSerial := sign("expired-missing", lost, now.Add(-time.Second), false)

	for _, tc := range []struct {
		name, file, reason string
		want               []string // in the output, in this order
		revoked            []string // serials certs show then calls revoked
	}{
		{"keyCompromise", expired, "keyCompromise",
			[]string{"revoked " + expiredSerial, "reason keyCompromise", "also revoked " + liveSerial},
			[]string{expiredSerial, liveSerial}},
		{"another reason", superseded, "superseded",
			[]string{"revoked " + supersededSerial, "reason superseded"}, []string{supersededSerial}},
		{"not in the inventory", missing, "keyCompromise",
			[]string{"recorded " + missingSerial, "revoked " + missingSerial}, []string{missingSerial}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI("certs", "revoke", "--data-dir", data, "--cert", tc.file, "--reason", tc.reason)
			if err != nil {
				t.Fatalf("certs revoke --cert of an expired certificate: %v\n%s", err, out)
			}
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, serial := range tc.revoked {
				if out, err := runCLI("certs", "show", "--data-dir", data, serial); err != nil || !strings.Contains(out, "Revoked:") {
					t.Errorf("certs show %s: %v\n%s", serial, err, out)
				}
			}
		})
	}
}

// recordCert records der, of the issuing CA issuerID, in the inventory
// of the stopped server's data directory.
func recordCert(t *testing.T, data, issuerID string, der []byte, at time.Time) {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(data, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.RecordIssuance(ctx, store.Issuance{Now: at, Certificate: pki.Certificate{
		SerialHex: cert.SerialNumber.Text(16), IssuerID: issuerID, Issuer: cert.Issuer.String(), Subject: cert.Subject.String(),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Status: pki.StatusValid, Profile: "default", Protocol: pki.ProtocolCLI,
		Source: pki.SourceIssued, KeyType: "p256", CreatedAt: at, DER: der,
	}}); err != nil {
		t.Fatal(err)
	}
}

// The commands whose --cert names a file without a certificate say so
// with the flag and the file, not the internal package that read it
// (r118: "--cert: keys: pw: no certificate found").
func TestCertFlagWithoutACertificate(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := storeTestDir(t)
	for _, args := range [][]string{
		{"certs", "revoke", "--cert", pw, "--data-dir", data},
		{"getcrl", "--url", "http://127.0.0.1:1/scep", "--cert", pw},
	} {
		out, err := runCLI(args...)
		if want := "--cert: " + pw + ": no certificate found"; err == nil || err.Error() != want {
			t.Errorf("%s: %v\n%s\nwant exactly %q", strings.Join(args[:2], " "), err, out, want)
		}
	}
}
