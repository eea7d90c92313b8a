package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// A key.destroyed event names the key by its role, place and the SHA-256
// of its SubjectPublicKeyInfo, and says why a destruction failed.
func TestKeyDestructionEvent(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	spki := hex.EncodeToString(sum[:])
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name        string
		d           KeyDestruction
		wantOutcome string
		wantReason  string
		wantDetail  []string
	}{
		{"destroyed", KeyDestruction{Role: KeyRoleIssuingCA, IssuerID: "ab12", Where: "ca/next/issuing.pkcs11 (pkcs11:token=ca;object=scepter-issuing-ab12)", Public: key.Public()},
			"success", "", []string{"issuing CA key at ca/next/issuing.pkcs11 (pkcs11:token=ca;object=scepter-issuing-ab12)", spki}},
		{"failed", KeyDestruction{Role: KeyRoleSCEPRA, IssuerID: "ab12", Where: "ra.pkcs11", Public: key.Public(), Err: errors.New("CKR_DEVICE_ERROR")},
			"failure", "CKR_DEVICE_ERROR", []string{"SCEP RA key at ra.pkcs11", spki}},
		{"public key unknown", KeyDestruction{Role: KeyRoleResponder, IssuerID: "ab12", Where: "ocsp/ab12.key"},
			"success", "", []string{"OCSP responder key at ocsp/ab12.key", "unknown"}},
		{"HTTPS", KeyDestruction{Role: KeyRoleHTTPSServer, IssuerID: "ab12", Where: "tls/server.key", Public: key.Public()},
			"success", "", []string{"HTTPS server key at tls/server.key", spki}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.d.Event(now, "cli:root")
			if ev.Type != EventKeyDestroyed || !ev.Time.Equal(now) || ev.Actor != "cli:root" || ev.IssuerID != "ab12" ||
				ev.Outcome != tt.wantOutcome || ev.Reason != tt.wantReason {
				t.Errorf("event %+v, want a %s by cli:root for ab12, outcome %s, reason %q", ev, EventKeyDestroyed, tt.wantOutcome, tt.wantReason)
			}
			for _, w := range tt.wantDetail {
				if !strings.Contains(ev.Detail, w) {
					t.Errorf("detail %q lacks %q", ev.Detail, w)
				}
			}
		})
	}
}
