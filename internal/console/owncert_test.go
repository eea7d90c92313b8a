package console_test

import (
	"context"
	"crypto/x509"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// The server's own certificates (protocol internal: the SCEP RA, an OCSP
// responder, the HTTPS certificate) cannot be put on hold: the form does
// not offer certificateHold, the first step refuses it with the service's
// reason (not a confirmation followed by a refusal), and the confirmation
// for another reason says what revoking that certificate does, not what
// it does to "the device" (r71 D1).
func TestOwnCertificateHold(t *testing.T) {
	e := newEnv(t, console.Options{})
	ctx := context.Background()
	if err := e.pki.Service.RecordRACertificates(ctx); err != nil {
		t.Fatal(err)
	}
	key, err := keys.Generate(keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	responder, err := e.pki.Service.IssueResponderCertificate(ctx, e.pki.Issuer().ID, key.Public(), 4*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	https, _, err := e.pki.Service.IssueServerCertificate(ctx, key.Public(), []string{"console.test"})
	if err != nil {
		t.Fatal(err)
	}
	b := e.as("operator")
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		// effect is what the confirmation must say.
		effect []string
	}{
		{"SCEP RA", e.pki.Service.ActiveRA().Cert, []string{"server's own SCEP RA certificate", "destroys its key", "issues a new RA key and certificate", "fetch GetCACert again", "getcert refresh-ca -c CA"}},
		{"OCSP responder", responder, []string{"server's own OCSP responder certificate", "destroys this key", "until the certificate expires"}},
		{"HTTPS", https, []string{"server's own HTTPS certificate", "new key and certificate within a minute"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.record(tc.cert)
			if rec.Protocol != pki.ProtocolInternal {
				t.Fatalf("protocol %q, want internal", rec.Protocol)
			}
			page := b.get(certPath(tc.cert) + "?issuer=" + rec.IssuerID)
			expectStatus(t, "the certificate's page", page, http.StatusOK)
			expectBody(t, "the certificate's page", page, `id="revoke-form"`, `<option value="superseded">`)
			expectNotBody(t, "the certificate's page", page, `<option value="certificateHold">`)

			// What the service answers at once, without a confirmation.
			_, err := e.ops.Revoke(ctx, auth.CLI("test"), rec.SerialHex, rec.IssuerID, "certificateHold")
			if pki.ErrorCode(err) != pki.EBadRequest {
				t.Fatalf("ops.Revoke with certificateHold: %v, want a refusal", err)
			}
			want := pki.ErrorMessage(err)
			for _, reason := range []string{"certificateHold", "CERTIFICATEHOLD", "6"} {
				res := b.post(certPath(tc.cert)+"/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {reason}})
				expectStatus(t, "step 1 with "+reason, res, http.StatusUnprocessableEntity)
				if !strings.Contains(html.UnescapeString(res.body), want) {
					t.Errorf("step 1 with %s does not give the service's reason %q:\n%s", reason, want, res.body)
				}
				expectNotBody(t, "step 1 with "+reason, res, `id="confirm-title"`, "put on hold:")
			}

			res := b.post(certPath(tc.cert)+"/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded"}})
			expectStatus(t, "step 1 with superseded", res, http.StatusOK)
			expectBody(t, "step 1 with superseded", res, `id="confirm-title"`)
			body := html.UnescapeString(res.body)
			for _, s := range tc.effect {
				if !strings.Contains(body, s) {
					t.Errorf("the confirmation does not say %q:\n%s", s, res.body)
				}
			}
			expectNotBody(t, "step 1 with superseded", res, "the device")
			if r := e.record(tc.cert); r.Status != pki.StatusValid {
				t.Fatalf("revoked before the confirmation: %+v", r)
			}
		})
	}

	// A device's certificate still offers the hold and speaks of the
	// device.
	c := e.issue("a-device")
	rec := e.record(c)
	expectBody(t, "a device's page", b.get(certPath(c)), `<option value="certificateHold">`)
	res := b.post(certPath(c)+"/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"superseded"}})
	expectBody(t, "a device's confirmation", res, "the device cannot renew with it")
	expectNotBody(t, "a device's confirmation", res, "server&#39;s own", "server's own")
	res = b.post(certPath(c)+"/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {"certificateHold"}})
	expectStatus(t, "a device's hold, step 1", res, http.StatusOK)
	expectBody(t, "a device's hold, step 1", res, "The certificate is put on hold")
}
