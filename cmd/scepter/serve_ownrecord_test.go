package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/ocsp"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// The reviewer's restore (r76 D1): the store is backed up, the CA rolled
// over and switched, which gives the new CA an OCSP responder (and the
// node a new HTTPS certificate); the backup is restored. Serve, started
// on it, loads both from the data directory, and records them in the
// inventory as it records the RAs: by serial they are found and can be
// revoked, OCSP answers good for the responder, and the store refuses a
// client certificate for its key. Without that the inventory lacked
// them: "no certificate with serial", OCSP "unknown".
func TestRestoredStoreRecordsResponderAndHTTPSCertificates(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	log := slog.New(slog.DiscardHandler)
	tlsDir := filepath.Join(p.Dir, "tls")
	names := []string{"127.0.0.1"}

	// Before the backup: the first CA's responder and CRL.
	f := revocationFlags{crlValidity: time.Hour, ocspValidity: time.Hour, responderValidity: ocsp.DefaultDelegateValidity}
	rev, err := f.newPublisher(ctx, p.Dir, p.Store, p.Authority, p.Clock, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := rev.startResponder(ctx, &f, p.Dir, p.Store, p.Authority, p.Service, p.Clock, log); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	backupSQLiteFile(t, filepath.Join(p.Dir, "scepter.db"), backup)

	// After it: a rollover and its switch, the new CA's responder, and an
	// HTTPS certificate of the new CA, recorded in the store the backup
	// no longer matches.
	switchAt := p.Clock.Now().Add(time.Hour)
	next, _, err := ca.Rollover(p.Dir, ca.RolloverOptions{SwitchAt: switchAt, GenerateKey: testKeys.Generate}, p.Clock)
	if err != nil {
		t.Fatal(err)
	}
	p.Clock.Set(switchAt.Add(time.Minute))
	reloadCA(p.Authority, p.Clock, log, func() {})
	if active, _ := p.Authority.Active(p.Clock.Now()); active.ID != next.ID {
		t.Fatalf("the active CA is %s, want the rollover's %s", active.ID, next.ID)
	}
	if err := rev.delegates.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	responder, ok := rev.delegates.Signer(next.ID)
	if !ok {
		t.Fatal("no responder for the new CA")
	}
	tlsCert, issued, err := server.ManagedCertificate(ctx, tlsDir, names, p.Service, "", p.Clock, log)
	if err != nil || !issued {
		t.Fatalf("HTTPS certificate: issued %v, %v", issued, err)
	}
	if err := tlsCert.Leaf().CheckSignatureFrom(next.Cert); err != nil {
		t.Fatalf("the HTTPS certificate is not the new CA's: %v", err)
	}

	// The restore, and serve's start on it (--store-restored).
	restoredPath := filepath.Join(t.TempDir(), "scepter.db")
	copyFile(t, backup, restoredPath)
	restored, err := sqlite.Open(ctx, restoredPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restored.Close() })
	svc, err := enroll.New(restored, p.Authority, p.Clock, log, enroll.Config{StaticChallenge: fixture.Challenge})
	if err != nil {
		t.Fatal(err)
	}
	f.storeRestored = true
	rev2, err := f.newPublisher(ctx, p.Dir, restored, p.Authority, p.Clock, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := rev2.startResponder(ctx, &f, p.Dir, restored, p.Authority, svc, p.Clock, log); err != nil {
		t.Fatal(err)
	}
	tlsCert2, issued, err := server.ManagedCertificate(ctx, tlsDir, names, svc, "", p.Clock, log)
	if err != nil || issued {
		t.Fatalf("HTTPS certificate after the restore: issued anew %v, %v; want the one on disk", issued, err)
	}
	if s, ok := rev2.delegates.Signer(next.ID); !ok || !s.Cert.Equal(responder.Cert) {
		t.Fatal("after the restore the responder is not the one on disk")
	}
	ownRecords := newOwnCertRecorder(func(ctx context.Context) error {
		return recordServerCertificates(ctx, svc, p.Authority, rev2.delegates, tlsCert2)
	}, log)
	ownRecords.run(ctx)

	for _, c := range []struct {
		what    string
		cert    *x509.Certificate
		profile string
		detail  string
	}{
		{"OCSP responder", responder.Cert, "ocsp-responder", "OCSP responder certificate, recorded in the inventory"},
		{"HTTPS", tlsCert.Leaf(), "tls-server", "HTTPS certificate, recorded in the inventory"},
	} {
		serial := c.cert.SerialNumber.Text(16)
		recs, err := restored.CertificatesBySerial(ctx, serial) // as 'certs show/revoke SERIAL' look
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 {
			t.Errorf("%s certificate %s: %d records in the restored inventory, want 1", c.what, serial, len(recs))
			continue
		}
		rec := recs[0]
		if rec.IssuerID != next.ID || rec.Profile != c.profile || rec.Protocol != pki.ProtocolInternal || rec.Status != pki.StatusValid {
			t.Errorf("%s certificate recorded as issuer %s, profile %s, protocol %s, %s; want %s, %s, internal, valid",
				c.what, rec.IssuerID, rec.Profile, rec.Protocol, rec.Status, next.ID, c.profile)
		}
		evs, err := restored.ListAudit(ctx, store.AuditFilter{SerialHex: serial})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Type != pki.EventIssued || evs[0].Detail != c.detail || evs[0].Actor != "system" {
			t.Errorf("%s certificate's audit events %+v, want one certificate.issued %q", c.what, evs, c.detail)
		}
	}

	// Run again (a CA reload): nothing more is recorded.
	ownRecords.run(ctx)
	if evs, err := restored.ListAudit(ctx, store.AuditFilter{SerialHex: responder.Cert.SerialNumber.Text(16)}); err != nil || len(evs) != 1 {
		t.Errorf("after a second run the responder has %d audit events (%v), want 1", len(evs), err)
	}

	// OCSP answers good for the responder, as for any certificate issued here.
	req, err := xocsp.CreateRequest(responder.Cert, next.Cert, &xocsp.RequestOptions{Hash: 0})
	if err != nil {
		t.Fatal(err)
	}
	answer := rev2.responder.Respond(ctx, req)
	resp, err := xocsp.ParseResponseForCert(answer.DER, responder.Cert, next.Cert)
	if err != nil {
		t.Fatalf("OCSP answer about the responder: %v (%v)", err, answer.Err)
	}
	if resp.Status != xocsp.Good {
		t.Errorf("OCSP answers %d about the responder, want good (%d)", resp.Status, xocsp.Good)
	}

	// Its key is one of the server's own to the store: a client request
	// for it is refused though this service was told of no server keys.
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "thief"}}, responder.Key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Enroll(ctx, enroll.Request{CSR: csr, Protocol: pki.ProtocolCLI, TransactionID: "thief", RemoteAddr: "127.0.0.1:1",
		Evidence: enroll.Evidence{Challenge: fixture.Challenge}})
	if !errors.Is(err, store.ErrOwnKey) && (err == nil || !strings.Contains(err.Error(), "OCSP responder")) {
		t.Errorf("a client certificate for the responder's key: %v, want it refused as the responder's", err)
	}

	// Revoked by serial, the responder is replaced.
	if _, _, err := restored.RevokeCertificate(ctx, next.ID, responder.Cert.SerialNumber.Text(16), pki.ReasonKeyCompromise, p.Clock.Now(),
		pki.AuditEvent{Type: pki.EventRevoked, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatalf("revoking the recorded responder by serial: %v", err)
	}
	if err := rev2.delegates.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s, ok := rev2.delegates.Signer(next.ID); !ok || s.Cert.Equal(responder.Cert) {
		t.Error("the revoked responder was not replaced")
	}
}

// The same through 'scepter serve' itself (the cheaper restore: the
// responder and HTTPS certificates on disk made anew after the backup,
// no rollover): started on the restored store, it records both before
// it serves, and 'certs show SERIAL' finds them.
func TestServeRecordsOwnCertificatesTheRestoredStoreLacks(t *testing.T) {
	// Mostly waits on real timers and fsyncs: beside the other such tests,
	// after the package's serial ones.
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	start := func(extra ...string) {
		t.Helper()
		s := serveInProcess(t, nil, append([]string{"--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--challenge", "test",
			"--data-dir", data}, extra...)...)
		if s.ended {
			t.Fatalf("serve %v: %v\n%s", extra, s.err, s.errb.String())
		}
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
	}
	start()
	backup := filepath.Join(dir, "backup.db")
	backupSQLiteFile(t, filepath.Join(data, "scepter.db"), backup)
	// After the backup: a new responder and HTTPS certificate, recorded in
	// the store the backup does not match.
	for _, pattern := range []string{"ocsp/*", "tls/*"} {
		files, err := filepath.Glob(filepath.Join(data, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	start()
	restoreSQLiteFile(t, backup, filepath.Join(data, "scepter.db"))
	responders, err := filepath.Glob(filepath.Join(data, "ocsp", "*.crt"))
	if err != nil || len(responders) != 1 {
		t.Fatalf("responder certificates on disk: %v, %v; want one", responders, err)
	}
	for _, c := range []struct{ file, profile string }{
		{responders[0], "ocsp-responder"},
		{filepath.Join(data, "tls", server.ServerCertFile), "tls-server"},
	} {
		serial := leafSerial(t, c.file)
		if out, err := runCLI("certs", "show", "--data-dir", data, serial); err == nil {
			t.Fatalf("before the restored start the store already holds %s:\n%s", serial, out)
		}
	}

	start("--store-restored")
	for _, c := range []struct{ file, profile string }{
		{responders[0], "ocsp-responder"},
		{filepath.Join(data, "tls", server.ServerCertFile), "tls-server"},
	} {
		serial := leafSerial(t, c.file)
		out, err := runCLI("certs", "show", "--data-dir", data, serial)
		if err != nil || !strings.Contains(out, c.profile) || !strings.Contains(out, "valid") {
			t.Errorf("certs show %s (%s) after serve started on the restored store: %v\n%s", serial, c.profile, err, out)
		}
	}
}

// leafSerial is the serial of the first certificate in file (a chain file
// starts with its leaf).
func leafSerial(t *testing.T, file string) string {
	t.Helper()
	certs, err := keys.LoadCertFile(file)
	if err != nil || len(certs) == 0 {
		t.Fatalf("%s: %d certificates, %v", file, len(certs), err)
	}
	return certs[0].SerialNumber.Text(16)
}
