package estserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
)

// r126 D2: a well-formed request whose EC key crypto/x509 does not read
// (brainpoolP256r1, secp256k1, P-256 with explicit parameters) is refused
// 403 as a key the profile does not take, as P-224 is, naming its curve
// or form, and audited so; it was 400, "not a PKCS#10 certificate request
// this server can read" (explicit parameters: "malformed"). Each refusal
// is the newest audit event, with its reason.
func TestUnreadableECKeyIsAPolicyRefusal(t *testing.T) {
	rsaOnly := profile("rsa", func(p *pki.Profile) { p.Keys.ECCurves = nil })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{rsaOnly}})
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	def := pki.DefaultProfile()
	allowed := "(allowed: " + strings.Join(def.Keys.ECCurves, ", ") + ")"
	for _, tc := range []struct {
		name, path string
		body       []byte
		want       string
	}{
		{"P-224, for comparison", "simpleenroll", newCSR(t, p224, "p224", csr.Template{}), "EC key on curve P-224 is not accepted by this profile " + allowed},
		{"brainpoolP256r1", "simpleenroll", est.EncodeBase64(pkitest.CSRWithECParameters(t, "bp", pkitest.OIDBrainpoolP256r1)),
			"EC key on curve brainpoolP256r1 is not accepted by this profile " + allowed},
		{"secp256k1", "simpleenroll", est.EncodeBase64(pkitest.CSRWithECParameters(t, "k1", pkitest.OIDSecp256k1)),
			"EC key on curve secp256k1 is not accepted by this profile " + allowed},
		{"secp256k1 at an RSA-only profile", "rsa/simpleenroll", est.EncodeBase64(pkitest.CSRWithECParameters(t, "k1", pkitest.OIDSecp256k1)),
			"EC keys are not accepted by this profile (RSA only); this one is on curve secp256k1"},
		{"P-256 point off its curve", "simpleenroll", est.EncodeBase64(offCurveCSR(t)), "the EC public key is not a valid point on P-256"},
		{"P-256 point off its curve at an RSA-only profile", "rsa/simpleenroll", est.EncodeBase64(offCurveCSR(t)),
			"EC keys are not accepted by this profile (RSA only); this one is on curve P-256"},
		{"P-256 with explicit parameters", "simpleenroll", est.EncodeBase64(pkitest.CSRWithECParameters(t, "ex", pkitest.ExplicitP256())),
			"the EC key's curve is given by explicit parameters, which RFC 5480 (section 2.1.1) does not allow: send it with its named curve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post(f.httpClient(nil, 0), tc.path, "alice", userPassword, tc.body, nil)
			wantStatus(t, r, http.StatusForbidden, tc.want)
			evs, err := f.st.ListAudit(context.Background(), store.AuditFilter{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || !strings.Contains(evs[0].Reason, tc.want) {
				t.Errorf("refusal events %+v, want the newest naming %q", evs, tc.want)
			}
		})
	}
}

// offCurveCSR is a P-256 request, well formed and signed, whose point's
// last byte is flipped: no longer a point on the curve.
func offCurveCSR(t *testing.T) []byte {
	return pkitest.CSRWithEditedECKey(t, "off-curve", func(_ *ecdsa.PrivateKey, _ *asn1.RawValue, point *asn1.BitString) {
		point.Bytes[len(point.Bytes)-1] ^= 0xff
	})
}
