package main

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// testServer is 'scepter serve' running in-process on free ports.
type testServer struct {
	scepURL, estURL, fingerprint, dataDir string
}

// startServe runs 'scepter serve' in-process with the config text (profiles)
// and any further flags until the test ends.
func startServe(t *testing.T, config string, flags ...string) *testServer {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepter.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &testServer{dataDir: filepath.Join(dir, "data")}
	srv := serveInProcess(t, nil, append([]string{"--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--est-server-name", "127.0.0.1",
		"--challenge", "test", "--data-dir", s.dataDir, "--config", cfg, "--est-retry-after", "1s"}, flags...)...)
	if srv.ended {
		t.Fatalf("serve stopped: %v\n%s\n%s", srv.err, srv.out.String(), srv.errb.String())
	}
	out := srv.out
	for _, line := range strings.Split(out.String(), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "SCEP URL":
			s.scepURL = v
		case "EST URL":
			s.estURL = strings.TrimSuffix(v, "/.well-known/est")
		case "Root CA fingerprint":
			s.fingerprint = v
		}
	}
	if s.scepURL == "" || s.estURL == "" || s.fingerprint == "" {
		t.Fatalf("serve's start-up lines:\n%s", out.String())
	}
	return s
}

// pending lists the requests held for approval.
func (s *testServer) pending(t *testing.T) []string {
	t.Helper()
	e, out, _ := testEnv(nil)
	if err := run(context.Background(), e, []string{"requests", "list", "--json", "--data-dir", s.dataDir}); err != nil {
		t.Fatal(err)
	}
	var reqs []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out.Bytes(), &reqs); err != nil {
		t.Fatalf("requests list: %v\n%s", err, out)
	}
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.ID)
	}
	return ids
}

func (s *testServer) approve(t *testing.T, id string) {
	t.Helper()
	e, _, errb := testEnv(nil)
	if err := run(context.Background(), e, []string{"requests", "approve", id, "--data-dir", s.dataDir}); err != nil {
		t.Fatalf("requests approve %s: %v\n%s", id, err, errb)
	}
}

// runCLI runs one scepter command; it returns its error and what it wrote.
func runCLI(args ...string) (string, error) {
	e, out, errb := testEnv(map[string]string{"SCEPTER_EST_PASSWORD": "test"})
	err := run(context.Background(), e, args)
	return out.String() + errb.String(), err
}

func loadKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	k, err := keys.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// expectHeld runs a command the server holds for approval and checks what
// it says, and that exactly one request is held.
func (s *testServer) expectHeld(t *testing.T, what string, args []string, wantSaid ...string) string {
	t.Helper()
	out, err := runCLI(args...)
	if err == nil || !strings.Contains(err.Error(), "pending manual approval") {
		t.Fatalf("%s: err %v, want the request held\n%s", what, err, out)
	}
	for _, w := range wantSaid {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q does not say %q", what, err, w)
		}
	}
	if ids := s.pending(t); len(ids) != 1 {
		t.Fatalf("%s: held requests %v, want one", what, ids)
	}
	return err.Error()
}

// A request held for approval is collected by running the same command
// again: the key made for it is saved (never over another key) and taken
// up again, so no second request is filed and the approved certificate is
// for a key that exists.
func TestHeldRequestKeepsItsKey(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\nrenewal_window = \"100%\"\n")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	sameKey := func(what string, a, b crypto.PublicKey) {
		t.Helper()
		if !pki.SamePublicKey(a, b) {
			t.Fatalf("%s: not the same key", what)
		}
	}
	collect := func(what string, args []string) string {
		t.Helper()
		ids := s.pending(t)
		if len(ids) != 1 {
			t.Fatalf("%s: held requests %v, want one", what, ids)
		}
		s.approve(t, ids[0])
		out, err := runCLI(args...)
		if err != nil {
			t.Fatalf("%s after the approval: %v\n%s", what, err, out)
		}
		if ids := s.pending(t); len(ids) != 0 {
			t.Fatalf("%s: still held: %v", what, ids)
		}
		return out
	}

	// SCEP enroll, twice while held, then once approved.
	enroll := []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=held-scep", "--key-type", "p256",
		"--out", path("cert.pem"), "--key-out", path("key.pem")}
	s.expectHeld(t, "enroll", enroll, "its key is saved in "+path("key.pem"), "run the same command again, with the same challenge", "--key "+path("key.pem"))
	first := loadKey(t, path("key.pem")).Public()
	s.expectHeld(t, "enroll again", enroll, "its key is saved in "+path("key.pem"))
	sameKey("key.pem after the second run", first, loadKey(t, path("key.pem")).Public())
	collect("enroll", enroll)
	sameKey("the enrolled certificate", first, certKey(t, path("cert.pem")))

	// SCEP renew --rekey into new files.
	renew := []string{"renew", "--url", s.scepURL, "--challenge", "test", "--cert", path("cert.pem"), "--key", path("key.pem"), "--rekey",
		"--out", path("new.pem"), "--key-out", path("newkey.pem")}
	s.expectHeld(t, "renew --rekey", renew, "its key is saved in "+path("newkey.pem"), "with the same challenge")
	newKey := loadKey(t, path("newkey.pem")).Public()
	s.expectHeld(t, "renew --rekey again", renew, "its key is saved in "+path("newkey.pem"))
	sameKey("newkey.pem after the second run", newKey, loadKey(t, path("newkey.pem")).Public())
	collect("renew --rekey", renew)
	sameKey("the renewed certificate", newKey, certKey(t, path("new.pem")))
	sameKey("key.pem", first, loadKey(t, path("key.pem")).Public())

	// SCEP renew --rekey in place: the current key stays until the new
	// certificate is issued; the held key waits beside it.
	inPlace := []string{"renew", "--url", s.scepURL, "--challenge", "test", "--cert", path("new.pem"), "--key", path("newkey.pem"), "--rekey",
		"--out", path("new.pem"), "--key-out", path("newkey.pem")}
	s.expectHeld(t, "renew --rekey in place", inPlace, "its key is saved in "+path("newkey.pem.pending"))
	sameKey("newkey.pem while held", newKey, loadKey(t, path("newkey.pem")).Public())
	held := loadKey(t, path("newkey.pem.pending")).Public()
	s.expectHeld(t, "renew --rekey in place again", inPlace, "its key is saved in "+path("newkey.pem.pending"))
	collect("renew --rekey in place", inPlace)
	sameKey("the certificate renewed in place", held, certKey(t, path("new.pem")))
	sameKey("newkey.pem renewed in place", held, loadKey(t, path("newkey.pem")).Public())
	if _, err := os.Stat(path("newkey.pem.pending")); !os.IsNotExist(err) {
		t.Errorf("newkey.pem.pending is left after the certificate was issued: %v", err)
	}

	// EST enroll, twice while held, then once approved.
	estEnroll := []string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=held-est",
		"--out", path("est.pem"), "--key-out", path("estkey.pem")}
	s.expectHeld(t, "est enroll", estEnroll, "its key is saved in "+path("estkey.pem"), "run the same command again", "--csr-key "+path("estkey.pem"))
	estKey := loadKey(t, path("estkey.pem")).Public()
	s.expectHeld(t, "est enroll again", estEnroll)
	sameKey("estkey.pem after the second run", estKey, loadKey(t, path("estkey.pem")).Public())
	collect("est enroll", estEnroll)
	sameKey("the EST certificate", estKey, certKey(t, path("est.pem")))

	// EST reenroll --rekey.
	reenroll := []string{"est", "reenroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--cert", path("est.pem"), "--key", path("estkey.pem"),
		"--rekey", "--out", path("est2.pem"), "--key-out", path("k2.pem")}
	s.expectHeld(t, "est reenroll --rekey", reenroll, "its key is saved in "+path("k2.pem"))
	k2 := loadKey(t, path("k2.pem")).Public()
	s.expectHeld(t, "est reenroll --rekey again", reenroll)
	collect("est reenroll --rekey", reenroll)
	sameKey("the EST renewed certificate", k2, certKey(t, path("est2.pem")))
}

// The key of a held request never replaces a file holding anything else.
func TestSaveHeldKeyReplacesNothing(t *testing.T) {
	key, _ := keys.Generate(keys.P256)
	other, _ := keys.Generate(keys.P256)
	tests := []struct {
		name            string
		keyOut, pending any // nil: absent; a crypto.Signer; or []byte content
		wantAt          string
		wantErr         bool
	}{
		{"free", nil, nil, "key.pem", false},
		{"the same key there", key, nil, "key.pem", false},
		{"another key there", other, nil, "key.pem.pending", false},
		{"not a key there", []byte("not a key"), nil, "key.pem.pending", false},
		{"the same key beside", other, key, "key.pem.pending", false},
		{"both taken", other, []byte("mine"), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			keyOut := filepath.Join(d, "key.pem")
			contents := map[string][]byte{}
			for path, v := range map[string]any{keyOut: tt.keyOut, keyOut + ".pending": tt.pending} {
				switch v := v.(type) {
				case crypto.Signer:
					if err := keys.WriteKeyFile(path, v); err != nil {
						t.Fatal(err)
					}
				case []byte:
					if err := os.WriteFile(path, v, 0o600); err != nil {
						t.Fatal(err)
					}
				default:
					continue
				}
				contents[path], _ = os.ReadFile(path)
			}
			at, err := saveHeldKey(keyOut, key, newHeldRequest([]byte("test")), holdAnswered)
			if (err != nil) != tt.wantErr {
				t.Fatalf("saveHeldKey: %q, %v", at, err)
			}
			if tt.wantAt != "" {
				if at != filepath.Join(d, tt.wantAt) {
					t.Fatalf("saved in %s, want %s", at, tt.wantAt)
				}
				if !pki.SamePublicKey(loadKey(t, at).Public(), key.Public()) {
					t.Errorf("%s does not hold the key", at)
				}
				if fi, err := os.Stat(at); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, %v; want 0600", at, fi.Mode().Perm(), err)
				}
			}
			for path, was := range contents {
				if now, _ := os.ReadFile(path); path != at && string(now) != string(was) {
					t.Errorf("%s was changed", path)
				}
			}
			if names, _ := filepath.Glob(filepath.Join(d, ".*")); len(names) != 0 {
				t.Errorf("temporary files left: %v", names)
			}
		})
	}
}

// Over plain HTTP without --ca-fingerprint, enroll says that it trusts the
// CA that answered unchecked, and names the fingerprint to pin.
func TestEnrollWithoutPinWarns(t *testing.T) {
	s := startServe(t, "")
	e, _, errb := testEnv(nil)
	dir := t.TempDir()
	err := run(context.Background(), e, []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=no-pin",
		"--out", filepath.Join(dir, "c.pem"), "--key-out", filepath.Join(dir, "k.pem")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errb.String(), "warning: no --ca-fingerprint") || !strings.Contains(errb.String(), s.fingerprint) {
		t.Errorf("stderr: %q; want a warning naming %s", errb.String(), s.fingerprint)
	}
}

// `requests approve` on a data directory where no server saved its public
// URL issued a certificate without CRL, OCSP and caIssuers URLs, whose
// revocation no relying party could learn. It now refuses, naming
// --public-url, and with --public-url the certificate points there.
func TestApproveWithoutASavedPublicURL(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\n")
	d := t.TempDir()
	enroll := []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=held-url", "--key-type", "p256",
		"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")}
	s.expectHeld(t, "enroll", enroll)
	ids := s.pending(t)
	if len(ids) != 1 {
		t.Fatalf("held requests %v, want one", ids)
	}
	if err := os.Remove(filepath.Join(s.dataDir, publicURLFile)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for an approval
	}{
		{"no saved URL, none given", nil, "--public-url"},
		{"a bad URL", []string{"--public-url", "ftp://pki.example"}, "--public-url"},
		{"given", []string{"--public-url", "http://pki.example/"}, ""},
	}
	for _, tc := range tests {
		out, err := runCLI(append([]string{"requests", "approve", ids[0], "--data-dir", s.dataDir}, tc.args...)...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || exitCode(err) != 2 {
				t.Fatalf("%s: err = %v (exit %d), want a usage error naming %s\n%s", tc.name, err, exitCode(err), tc.wantErr, out)
			}
			if got := s.pending(t); len(got) != 1 {
				t.Fatalf("%s: the request was decided: pending %v", tc.name, got)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, out)
		}
	}
	if out, err := runCLI(enroll...); err != nil {
		t.Fatalf("collecting: %v\n%s", err, out)
	}
	certs, err := keys.LoadCertFile(filepath.Join(d, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]
	if len(c.CRLDistributionPoints) != 1 || !strings.HasPrefix(c.CRLDistributionPoints[0], "http://pki.example/crl/") ||
		len(c.OCSPServer) != 1 || c.OCSPServer[0] != "http://pki.example/ocsp" || len(c.IssuingCertificateURL) != 1 {
		t.Errorf("CRL %v, OCSP %v, caIssuers %v: want them under http://pki.example", c.CRLDistributionPoints, c.OCSPServer, c.IssuingCertificateURL)
	}
}

// `scepter renew --rekey` keeps the new key before it asks: when the
// answer is lost after the server issued (and, with revoke_superseded,
// revoked the old certificate), running the command again asks with the
// same key and gets the certificate issued for it, instead of being
// refused for a revoked certificate with the new key gone. A refusal
// drops the kept key.
func TestRenewRekeyWithLostAnswerAsksAgainWithTheSameKey(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"100%\"\nrevoke_superseded = true\n")
	upstream, err := url.Parse(s.scepURL)
	if err != nil {
		t.Fatal(err)
	}
	upstream.Path = ""
	// A proxy that lets the renewal reach the server and loses its answer.
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodPost && r.Request.URL.Query().Get("operation") == "PKIOperation" {
			return errors.New("answer lost")
		}
		return nil
	}
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	lossy := httptest.NewServer(proxy)
	defer lossy.Close()
	lossyURL := lossy.URL + "/scep"

	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	if out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=lost-answer", "--ca-fingerprint", s.fingerprint,
		"--out", path("cert.pem"), "--key-out", path("key.pem")); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	oldKey := loadKey(t, path("key.pem")).Public()
	renew := func(u string) (string, error) {
		return runCLI("renew", "--url", u, "--ca-fingerprint", s.fingerprint, "--cert", path("cert.pem"), "--key", path("key.pem"), "--rekey",
			"--out", path("cert.pem"), "--key-out", path("key.pem"))
	}

	out, err := renew(lossyURL)
	if err == nil || !strings.Contains(err.Error(), "the new key is kept in "+path("key.pem.pending")) {
		t.Fatalf("renew with the answer lost: %v, want it to say where the new key is kept\n%s", err, out)
	}
	kept := loadKey(t, path("key.pem.pending")).Public()
	if !pki.SamePublicKey(oldKey, loadKey(t, path("key.pem")).Public()) || !pki.SamePublicKey(oldKey, certKey(t, path("cert.pem"))) {
		t.Fatal("the lost renewal changed key.pem or cert.pem")
	}

	if out, err := renew(s.scepURL); err != nil {
		t.Fatalf("renew again: %v\n%s", err, out)
	}
	if !pki.SamePublicKey(kept, certKey(t, path("cert.pem"))) || !pki.SamePublicKey(kept, loadKey(t, path("key.pem")).Public()) {
		t.Error("the renewed certificate and key.pem are not for the key kept by the lost renewal")
	}
	if _, err := os.Stat(path("key.pem.pending")); !os.IsNotExist(err) {
		t.Errorf("key.pem.pending left after the renewal: %v", err)
	}

	// Refused (the certificate revoked): nothing is kept for a next run.
	revoked := []string{"--cert", path("old.pem"), "--key", path("oldkey.pem"), "--out", path("old.pem"), "--key-out", path("oldkey.pem")}
	if out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=lost-answer-2", "--ca-fingerprint", s.fingerprint,
		"--out", path("old.pem"), "--key-out", path("oldkey.pem")); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	serial := certSerial(t, path("old.pem"))
	if out, err := runCLI("certs", "revoke", serial, "--data-dir", s.dataDir); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	out, err = runCLI(append([]string{"renew", "--url", s.scepURL, "--ca-fingerprint", s.fingerprint, "--rekey"}, revoked...)...)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("renew of a revoked certificate: %v, want a refusal\n%s", err, out)
	}
	if _, err := os.Stat(path("oldkey.pem.pending")); !os.IsNotExist(err) {
		t.Errorf("oldkey.pem.pending kept after a refusal: %v", err)
	}
}

func certSerial(t *testing.T, path string) string {
	t.Helper()
	certs, err := keys.LoadCertFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0].SerialNumber.Text(16)
}

// A new key that `scepter renew --rekey` kept in a run that failed before
// the server answered is taken up by the next run; when the server
// refuses that run, the key is removed with its marker, as README says,
// instead of being taken up by every later run (r57 D6).
func TestRenewRekeyRefusalRemovesAKeyKeptByAnEarlierRun(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"100%\"\n")
	// GetCACaps and GetCACert answered, the request's answer lost (a
	// run that failed before it asked keeps no key).
	target, err := url.Parse(s.scepURL)
	if err != nil {
		t.Fatal(err)
	}
	relay := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("operation") == "PKIOperation" {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		relay.ServeHTTP(w, r)
	}))
	defer down.Close()
	downURL := down.URL + target.Path

	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	if out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=kept-refused", "--ca-fingerprint", s.fingerprint,
		"--out", path("cert.pem"), "--key-out", path("key.pem")); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	renew := func(u string) (string, error) {
		return runCLI("renew", "--url", u, "--ca-fingerprint", s.fingerprint, "--cert", path("cert.pem"), "--key", path("key.pem"), "--rekey",
			"--out", path("cert.pem"), "--key-out", path("key.pem"))
	}
	out, err := renew(downURL)
	if err == nil || !strings.Contains(err.Error(), "the new key is kept in "+path("key.pem.pending")) {
		t.Fatalf("renew with the server down: %v, want the new key kept\n%s", err, out)
	}
	if out, err := runCLI("certs", "revoke", certSerial(t, path("cert.pem")), "--data-dir", s.dataDir); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	out, err = renew(s.scepURL)
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(out, "using the key in "+path("key.pem.pending")) {
		t.Fatalf("renew of the revoked certificate with the kept key: %v, want a refusal\n%s", err, out)
	}
	if !strings.Contains(err.Error(), path("key.pem.pending")+" is removed") {
		t.Errorf("the refusal does not say the kept key is removed: %v", err)
	}
	for _, name := range []string{"key.pem.pending", "key.pem.pending.request"} {
		if _, err := os.Stat(path(name)); !os.IsNotExist(err) {
			t.Errorf("%s kept after a refusal: %v", name, err)
		}
	}
}
