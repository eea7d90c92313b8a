package scepserver_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/asn1"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// r126 D2: a well-formed request whose EC key crypto/x509 does not read is
// refused badRequest naming its curve or form, as EST's 403 and a P-224
// key's refusal do, and audited so; it was answered as a message that
// could not be decrypted.
func TestUnreadableECKeyIsAPolicyRefusal(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	def := pki.DefaultProfile()
	allowed := "(allowed: " + strings.Join(def.Keys.ECCurves, ", ") + ")"
	for _, tc := range []struct {
		name string
		der  []byte
		want string
	}{
		{"brainpoolP256r1", pkitest.CSRWithECParameters(t, "bp", pkitest.OIDBrainpoolP256r1), "EC key on curve brainpoolP256r1 is not accepted by this profile " + allowed},
		{"secp256k1", pkitest.CSRWithECParameters(t, "k1", pkitest.OIDSecp256k1), "EC key on curve secp256k1 is not accepted by this profile " + allowed},
		{"P-256 point off its curve", pkitest.CSRWithEditedECKey(t, "off-curve", func(_ *ecdsa.PrivateKey, _ *asn1.RawValue, point *asn1.BitString) {
			point.Bytes[len(point.Bytes)-1] ^= 0xff
		}), "the EC public key is not a valid point on P-256"},
		{"P-256 with explicit parameters", pkitest.CSRWithECParameters(t, "ex", pkitest.ExplicitP256()),
			"the EC key's curve is given by explicit parameters, which RFC 5480 (section 2.1.1) does not allow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, msg := ts.build(t, reqParams{csrDER: tc.der})
			resp, body := ts.post(t, der)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			rep := ts.parseReply(t, body, msg)
			if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadRequest || !strings.Contains(rep.FailInfoText, tc.want) {
				t.Errorf("pkiStatus %s failInfo %s (%q), want FAILURE badRequest naming %q", rep.PKIStatus, rep.FailInfo, rep.FailInfoText, tc.want)
			}
			evs, err := ts.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || !strings.Contains(evs[0].Reason, tc.want) {
				t.Errorf("audit events %+v, want the newest naming %q", evs, tc.want)
			}
		})
	}
}
