package estserver_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A re-enrollment held for approval whose client certificate is then
// revoked for good is rejected by the system (with the reason and audit
// event of a held request no approval can issue) when the device sends it
// again over TLS with that certificate, which is refused (401) before the
// request is read for anything else; the device's answer is the same as
// before. On hold, the request stays pending (lifting the hold makes it
// approvable); another device's held re-enrollment is left alone.
func TestRefusedResendOfAHeldReenrollmentByARevokedCertificate(t *testing.T) {
	for _, c := range []struct {
		name     string
		reason   int
		wantText string
		rejected bool
	}{
		{"revoked", pki.ReasonCessationOfOperation, "the certificate to renew is revoked", true},
		{"key compromised", store.ReasonKeyCompromise, "the certificate to renew is revoked", true},
		{"on hold", pki.ReasonCertificateHold, "on hold (certificateHold)", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			approval := profile("approval", func(p *pki.Profile) {
				p.RequireApproval, p.ChallengeMode, p.RenewalWindow = true, enroll.ChallengeOneTime, 1
			})
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{approval}})
			ctx := context.Background()
			pendingID := func() string {
				t.Helper()
				reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
				if err != nil || len(reqs) == 0 {
					t.Fatalf("pending requests %d, %v", len(reqs), err)
				}
				return reqs[0].ID // newest first
			}
			// Two devices, each with a certificate issued on approval,
			// each re-enrolling with a new key: both held.
			type device struct {
				cert      *x509.Certificate
				client    *http.Client
				body      []byte
				renewalID string
			}
			devs := map[string]*device{}
			for _, name := range []string{"revoked", "other"} {
				otp, _, err := f.adm.NewChallenge(ctx, time.Hour, "approval", "test")
				if err != nil {
					t.Fatal(err)
				}
				key := newKey(t)
				wantStatus(t, f.post(f.httpClient(nil, 0), "approval/simpleenroll", "dev", otp, newCSR(t, key, "dev-"+name, csr.Template{}), nil),
					http.StatusAccepted, "held for approval")
				res, err := f.svc.Approve(ctx, pendingID(), "cli:test")
				if err != nil {
					t.Fatal(err)
				}
				d := &device{cert: res.Certificate, client: f.httpClient(tlsPair(res.Certificate, key), 0),
					body: newCSR(t, newKey(t), "dev-"+name, csr.Template{})}
				wantStatus(t, f.post(d.client, "approval/simplereenroll", "", "", d.body, nil), http.StatusAccepted, "held for approval")
				d.renewalID = pendingID()
				devs[name] = d
			}
			dev := devs["revoked"]
			serial := dev.cert.SerialNumber.Text(16)
			rv, err := f.adm.Revoke(ctx, serial, "", c.reason, "cli:test")
			if err != nil {
				t.Fatal(err)
			}

			// Sent again, over TLS with the revoked certificate.
			again := f.post(dev.client, "approval/simplereenroll", "", "", dev.body, nil)
			wantStatus(t, again, http.StatusUnauthorized, c.wantText)
			if c.rejected {
				// Revoked for good: the body names the certificate, when
				// and why it was revoked, and what to do (r119).
				name, _ := pki.ReasonName(c.reason)
				next := "enroll anew, authenticated by a challenge"
				if c.reason == store.ReasonKeyCompromise {
					next = "enroll anew with a new key, authenticated by a challenge"
				}
				for _, w := range []string{pki.ShownSerial(serial) + " was revoked at " + rv.Certificate.RevokedAt.UTC().Format(time.RFC3339) + " (" + name + ")", next} {
					if !strings.Contains(string(again.body), w) {
						t.Errorf("body %q, want %q in it", again.body, w)
					}
				}
			}
			r, err := f.st.Request(ctx, dev.renewalID)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventRequestRejected, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if !c.rejected {
				if r.Status != pki.RequestPending || len(evs) != 0 {
					t.Errorf("request %s, %d rejection events; want it still pending", r.Status, len(evs))
				}
			} else {
				if r.Status != pki.RequestRejected || r.DecidedBy != enroll.SystemRejecter ||
					!strings.Contains(r.Reason, "the certificate to renew, "+pki.ShownSerial(serial)+", was revoked on ") {
					t.Errorf("request %s by %q (%q); want rejected by %q naming %s", r.Status, r.DecidedBy, r.Reason, enroll.SystemRejecter, pki.ShownSerial(serial))
				}
				if len(evs) != 1 || evs[0].Actor != enroll.SystemRejecter || evs[0].Reason != r.Reason {
					t.Errorf("rejection events %+v; want one by %q with the request's reason", evs, enroll.SystemRejecter)
				}
			}
			if other, err := f.st.Request(ctx, devs["other"].renewalID); err != nil || other.Status != pki.RequestPending {
				t.Errorf("the other device's re-enrollment: %+v, %v; want it still pending", other, err)
			}
		})
	}
}
