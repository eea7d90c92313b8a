package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// A discarded next CA leaves nothing alive behind: the certificates a
// server had it issue before its switch (its RA and OCSP responder
// certificates) are revoked in the inventory, for cessationOfOperation and
// audited, and this node's OCSP responder for it (certificate and keys)
// is removed. Before, they stayed valid in the inventory and the
// responder's key stayed in DATA/ocsp, going into every export-keys.
func TestCARolloverDiscardRetiresWhatItIssued(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	serveArgs := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}
	first := serveInProcess(t, nil, serveArgs...)
	if first.ended {
		t.Fatalf("serve: %v\n%s", first.err, first.errb.String())
	}
	first.stop()
	if _, _, err := runCA(t, nil, data, "rollover", "--switch-in", "48h"); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(data, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	next, _, _ := a.Next(pki.SystemClock{}.Now())
	if next == nil {
		t.Fatal("no next CA after the rollover")
	}
	// A server loads the next CA: it records its RA and makes its responder.
	second := serveInProcess(t, nil, serveArgs...)
	if second.ended {
		t.Fatalf("serve: %v\n%s", second.err, second.errb.String())
	}
	second.stop()
	responderCert := filepath.Join(data, responderDir, next.ID[:32]+".crt")
	responderKey := filepath.Join(data, responderDir, next.ID[:32]+".key")
	for _, p := range []string{responderCert, responderKey} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the server made no responder for the next CA: %v", err)
		}
	}
	issuedBy := func(st store.Store) []pki.Certificate {
		certs, _, err := st.ListCertificates(ctx, store.CertFilter{IssuerID: next.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return certs
	}
	st, err := sqlite.Open(ctx, filepath.Join(data, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	before := issuedBy(st)
	st.Close()
	if len(before) < 2 {
		t.Fatalf("the next CA issued %d certificates, want its RA's and its responder's", len(before))
	}

	responderPub, err := keys.LoadKeyFile(responderKey)
	if err != nil {
		t.Fatal(err)
	}
	// r87 D2: the next CA's own key files go with DATA/ca/next.
	nextKeys := map[string]string{} // key file: role
	nextPubs := map[string]crypto.PublicKey{}
	for f, role := range map[string]string{ca.IssuingKeyFile: pki.KeyRoleIssuingCA, ca.RAKeyFile: pki.KeyRoleSCEPRA} {
		p := filepath.Join(data, "ca", ca.NextDir, f)
		k, err := keys.LoadKeyFile(p)
		if err != nil {
			t.Fatalf("the next CA's %s: %v", f, err)
		}
		nextKeys[p], nextPubs[p] = role, k.Public()
	}
	out, _, err := runCA(t, nil, data, "rollover", "--discard")
	if err != nil {
		t.Fatalf("--discard: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Revoked in the inventory") || !strings.Contains(out, responderKey) {
		t.Errorf("the discard does not say what it retired:\n%s", out)
	}
	for _, p := range []string{responderCert, responderKey} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	st, err = sqlite.Open(ctx, filepath.Join(data, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	after := issuedBy(st)
	if len(after) != len(before) {
		t.Fatalf("%d certificates of the next CA after the discard, %d before: none may be lost", len(after), len(before))
	}
	for _, c := range after {
		if c.Status != pki.StatusRevoked || c.RevokeReason != 5 {
			t.Errorf("%s (%s): status %s, reason %d; want revoked, cessationOfOperation", c.SerialHex, c.Subject, c.Status, c.RevokeReason)
		}
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRevoked, Limit: 10})
	if err != nil || len(evs) != len(before) || !strings.Contains(evs[0].Detail, "discarded") {
		t.Errorf("audit: %d revocation events (want %d), %v: %+v", len(evs), len(before), err, evs)
	}
	// Each key destroyed is in the trail, by its file and key: the
	// responder's, and (r87 D2) the next issuing CA's and its RA's, which
	// had none.
	evs, err = st.ListAudit(ctx, store.AuditFilter{Type: pki.EventKeyDestroyed})
	if err != nil {
		t.Fatal(err)
	}
	nextKeys[responderKey], nextPubs[responderKey] = pki.KeyRoleResponder, responderPub.Public()
	if len(evs) != len(nextKeys) {
		t.Errorf("audit: %d key.destroyed events, want %d, one per key file destroyed: %+v", len(evs), len(nextKeys), evs)
	}
	for p, role := range nextKeys {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
		wantSPKI := spkiSHA256Hex(t, nextPubs[p])
		found := false
		for _, ev := range evs {
			found = found || ev.IssuerID == next.ID && ev.Actor == cliActor() && ev.Outcome == "success" &&
				strings.Contains(ev.Detail, role+" key at "+p+";") && strings.Contains(ev.Detail, wantSPKI)
		}
		if !found {
			t.Errorf("audit: no key.destroyed event by %s for the %s key %s of %s (SPKI SHA-256 %s): %+v", cliActor(), role, p, next.ID, wantSPKI, evs)
		}
	}
}

// spkiSHA256Hex is the hex SHA-256 of pub's SubjectPublicKeyInfo, as a
// key.destroyed event names the key.
func spkiSHA256Hex(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}
