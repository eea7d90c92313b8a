package console_test

import (
	"context"
	"crypto/x509"
	"html"
	"net/http"
	"net/url"
	"strconv"
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

// A reason the service does not know is refused by the reasons and codes
// the page's form takes: on the server's own certificates neither
// certificateHold nor 6 (r72 D2); on a certificate revoked already,
// keyCompromise alone. aACompromise keeps the service's explanation.
func TestUnknownReasonNamesTheForm(t *testing.T) {
	e := newEnv(t, console.Options{})
	ctx := context.Background()
	if err := e.pki.Service.RecordRACertificates(ctx); err != nil {
		t.Fatal(err)
	}
	ra := e.pki.Service.ActiveRA().Cert
	device := e.issue("a-device")
	superseded := e.issue("superseded")
	if _, err := e.ops.Revoke(ctx, auth.CLI("test"), e.record(superseded).SerialHex, "", "superseded"); err != nil {
		t.Fatal(err)
	}
	const (
		own    = `want one of unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, or its code (0-5, 9)`
		all    = `want one of unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, or its code (0-6, 9)`
		raise  = `want keyCompromise, or its code (1)`
		attrib = "aACompromise is for attribute certificates"
	)
	b := e.as("operator")
	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		reasons []string
		want    string
		notWant string
	}{
		{"the SCEP RA", ra, []string{" 6", "certificate_hold", "hold", "+6", "7", "8", "11"}, own, "certificateHold"},
		{"the SCEP RA, aACompromise", ra, []string{"aACompromise", "10", "010"}, attrib, "certificateHold"},
		{"a device's", device, []string{" 6", "hold", "7"}, all, "privilegeWithdrawn, or its code (0-5"},
		{"a revoked one", superseded, []string{"hold", "7"}, raise, "unspecified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.record(tc.cert)
			for _, reason := range tc.reasons {
				for _, confirm := range []string{"", "yes"} {
					what := "reason " + strconv.Quote(reason) + ", confirm=" + confirm
					res := b.post(certPath(tc.cert)+"/revoke", url.Values{"issuer": {rec.IssuerID}, "reason": {reason}, "confirm": {confirm}})
					expectStatus(t, what, res, http.StatusUnprocessableEntity)
					body := html.UnescapeString(res.body)
					if !strings.Contains(body, tc.want) {
						t.Errorf("%s: the refusal does not say %q:\n%s", what, tc.want, res.body)
					}
					if alert := alertText(body); alert == "" || strings.Contains(alert, tc.notWant) {
						t.Errorf("%s: the refusal is empty or says %q: %q", what, tc.notWant, alert)
					}
				}
			}
			if r := e.record(tc.cert); r.Status != rec.Status || r.RevokeReason != rec.RevokeReason {
				t.Errorf("changed by a refused reason: %+v", r)
			}
		})
	}
}

// alertText is the text of a page's role="alert" element, its refusal.
func alertText(body string) string {
	_, after, ok := strings.Cut(body, `role="alert"`)
	if !ok {
		return ""
	}
	text, _, _ := strings.Cut(after, "</")
	return text
}
