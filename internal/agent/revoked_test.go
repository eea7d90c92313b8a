package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/pki"
	pkifixture "github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

// A renewal the server refuses because the certificate in place is
// revoked, or on hold, is not retried at the normal pace: --once asks
// once (not once_attempts times), the long-running agent waits
// RevokedRetry, the error says what it is and what to do (enroll again;
// lift the hold), and `agent status` fails naming it until a renewal
// succeeds. Before, the refusal was retried with backoff forever, status
// exited 0, and nothing said to enroll again (r108, Observations).
// Against a real SCEP server whose store has the certificate revoked.
func TestRevokedCertificateRenewalIsFinal(t *testing.T) {
	for _, tt := range []struct {
		name   string
		reason int
		want   []string
	}{
		{name: "revoked", reason: 4, want: []string{"it is revoked", "enroll again"}},
		{name: "on hold", reason: 6, want: []string{"it is on hold (certificateHold)", "ask the CA's operator to lift the hold (scepter certs unhold "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := pkifixture.New(t, pkifixture.Options{})
			h, err := scepserver.New(p.Service, p.Clock, p.Log, scepserver.Options{})
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			for pattern, handler := range h.Routes() {
				mux.Handle(pattern, handler)
			}
			srv := httptest.NewServer(mux)
			defer srv.Close()
			old, key := p.Issue(t, "revoked-device")
			dir := t.TempDir()
			writePEM(t, filepath.Join(dir, "key.pem"), 0o600, key)
			writePEM(t, filepath.Join(dir, "cert.pem"), 0o644, nil, old)
			chain := p.Issuer().Chain
			text := fmt.Sprintf("once_attempts = 3\n\n[[certificate]]\nname = \"dev\"\nprotocol = \"scep\"\nurl = %q\nca_fingerprint = %q\nkey_path = \"key.pem\"\ncert_path = \"cert.pem\"\n",
				srv.URL+"/scep", client.Fingerprint(chain[len(chain)-1]))
			cfg, err := ParseConfig([]byte(text), dir)
			if err != nil {
				t.Fatalf("config:\n%s\n%v", text, err)
			}
			p.Revoke(t, old, tt.reason)
			p.Clock.Set(old.NotAfter.Add(-time.Hour))
			logs := &syncBuffer{}
			a := &Agent{Config: cfg, Clock: p.Clock, Log: slog.New(slog.NewTextHandler(logs, nil)), Jitter: func() float64 { return 0.5 },
				Sleep: func(ctx context.Context, d time.Duration) error { p.Clock.Advance(d); return ctx.Err() }}
			ctx := context.Background()

			if err := a.RunOnce(ctx); err == nil {
				t.Fatal("RunOnce: no error")
			}
			if n := strings.Count(logs.String(), "msg=renewing"); n != 1 {
				t.Errorf("%d attempts, want 1: the refusal is final\n%s", n, logs)
			}
			serial := pki.SerialText(old.SerialNumber)
			for _, want := range append([]string{"the server refuses to renew the certificate in place (serial " + serial + ")"}, tt.want...) {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log does not say %q:\n%s", want, logs)
				}
			}

			st := a.Status()[0]
			if !st.Failing(p.Clock.Now()) {
				t.Errorf("status does not fail: %+v", st)
			}
			var out bytes.Buffer
			WriteStatus(&out, a.Status(), p.Clock.Now())
			for _, want := range append([]string{"problem:       the server refused to renew the certificate in place"}, tt.want...) {
				if !strings.Contains(out.String(), want) {
					t.Errorf("status does not say %q:\n%s", want, out.String())
				}
			}

			// The long-running agent waits RevokedRetry before it asks
			// again.
			var s certState
			now := p.Clock.Now()
			a.update(&cfg.Certificates[0], &s, a.check(ctx, &cfg.Certificates[0], doAll), now)
			if want := now.Add(RevokedRetry); !s.hold.Equal(want) {
				t.Errorf("next attempt at %s, want %s (RevokedRetry)", s.hold, want)
			}
		})
	}
}

// Only a refusal that says the certificate is revoked or on hold is taken
// for one; over EST it is a 401 in the server's words.
func TestRevokedRefusalIsToldApart(t *testing.T) {
	cert := newTestCA(t, epoch, false).cert
	for _, tt := range []struct {
		name string
		err  error
		want string // "revoked", "hold" or "" (not a revoked refusal)
	}{
		{"SCEP revoked", &client.FailureError{FailInfo: scep.BadCertID, Text: "the certificate to renew is revoked"}, "revoked"},
		{"SCEP on hold", &client.FailureError{FailInfo: scep.BadCertID, Text: "the signer certificate is on hold (certificateHold); ask the operator to lift the hold, then renew"}, "hold"},
		{"SCEP badCertId otherwise", &client.FailureError{FailInfo: scep.BadCertID, Text: "the signer certificate is not in this CA's inventory"}, ""},
		{"SCEP badTime", &client.FailureError{FailInfo: scep.BadTime, Text: "the certificate to renew is revoked"}, ""},
		{"EST 401 revoked", fmt.Errorf("simplereenroll: %w", &client.HTTPError{Status: 401, Reason: "the client certificate is revoked"}), "revoked"},
		{"EST 401 on hold", &client.HTTPError{Status: 401, Reason: "the client certificate is on hold (certificateHold); ask the operator to lift the hold, then renew"}, "hold"},
		{"EST 403", &client.HTTPError{Status: 403, Reason: "the client certificate is revoked"}, ""},
		{"connection refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), ""},
		{"nil", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if r := revokedRefusal(tt.err, cert); r != nil {
				got = "revoked"
				if r.hold {
					got = "hold"
				}
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
