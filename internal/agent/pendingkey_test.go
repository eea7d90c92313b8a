package agent

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	pkifixture "github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/store"
)

const askingAgain = "asking again with the key of an earlier request"

// An attempt whose request never left (nothing listens at the URL) does
// not make the next one say it asks about an earlier request: nothing is
// held on the server. The key kept before asking stays, without a record
// that its request went anywhere.
func TestUnsentRequestIsNotAskedAgain(t *testing.T) {
	for _, tt := range []struct{ protocol, url string }{
		{ProtocolSCEP, "http://127.0.0.1:1/scep"},
		{ProtocolEST, "https://127.0.0.1:1"},
	} {
		t.Run(tt.protocol, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.agent.Renewers = nil // the real clients; nothing listens
			f.cert().Protocol, f.cert().URL = tt.protocol, tt.url
			f.cfg.OnceAttempts = 3
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			err := f.agent.RunOnce(context.Background())
			if err == nil || !strings.Contains(f.logs.String(), "connection refused") {
				t.Fatalf("RunOnce: %v, want the connection refused", err)
			}
			if n := strings.Count(f.logs.String(), "level=INFO msg=renewing"); n != 3 {
				t.Fatalf("%d attempts, want 3", n)
			}
			if strings.Contains(f.logs.String(), askingAgain) {
				t.Errorf("an attempt says it asks about an earlier request, and none reached a server:\n%s", f.logs)
			}
			state := newLayout(f.cert(), nil).state
			if _, err := os.Stat(filepath.Join(state, pendingKeyPEM)); err != nil {
				t.Errorf("the key kept before asking: %v", err)
			}
			if _, err := os.Stat(filepath.Join(state, pendingSentName)); !os.IsNotExist(err) {
				t.Errorf("a record that the request was sent: %v", err)
			}
		})
	}
}

// A request held for approval is asked about again with its key, saying
// so, as long as the certificate's protocol and URL are those it went to;
// once they are another server's, its key is dropped, saying why, and a
// new request is made with a new key.
func TestHeldRequestKeyFollowsItsServer(t *testing.T) {
	for _, tt := range []struct {
		name          string
		protocol, url string // the configuration after the held request
		reused        bool
	}{
		{"same server", ProtocolSCEP, "http://127.0.0.1:1/scep", true},
		{"another URL", ProtocolSCEP, "http://127.0.0.1:2/scep/other", false},
		{"EST", ProtocolEST, "https://127.0.0.1:2", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.renewer.failFor, f.renewer.err = 1, &client.PendingError{TransactionID: "T1"}
			f.cfg.OnceAttempts = 1
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(context.Background()); err == nil {
				t.Fatal("a pending request is not a success")
			}
			f.cert().Protocol, f.cert().URL = tt.protocol, tt.url
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(f.renewer.keys) != 2 {
				t.Fatalf("%d requests, want 2", len(f.renewer.keys))
			}
			if same := pki.SamePublicKey(f.renewer.keys[0], f.renewer.keys[1]); same != tt.reused {
				t.Errorf("the held request's key asked with again: %v, want %v", same, tt.reused)
			}
			logs := f.logs.String()
			if got := strings.Contains(logs, askingAgain); got != tt.reused {
				t.Errorf("says it asks again with the earlier key: %v, want %v\n%s", got, tt.reused, logs)
			}
			dropped := strings.Contains(logs, "not asking with the key of an earlier request: that request went to another server") &&
				strings.Contains(logs, "earlier_url=http://127.0.0.1:1/scep")
			if dropped == tt.reused {
				t.Errorf("says the earlier key is dropped: %v, want %v\n%s", dropped, !tt.reused, logs)
			}
			if !pki.SamePublicKey(f.pair().key.Public(), f.renewer.keys[1]) {
				t.Error("the installed key is not the one asked with")
			}
			expectClean(t, f)
		})
	}
}

// Over SCEP, from a real server whose profile holds requests for approval:
// the renewal is held (PENDING), the next attempt asks about the same
// request with its key, saying so, and files no second one; once approved,
// the attempt after collects the certificate for that key.
func TestHeldSCEPRenewalIsCollectedAfterApproval(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	p := pkifixture.New(t, pkifixture.Options{Config: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
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

	ctx := context.Background()
	first := p.Request(t, "held-device")
	res, err := p.Service.Enroll(ctx, first.Request)
	if err != nil || res.Pending == nil {
		t.Fatalf("the first enrollment: %+v, %v; want it held", res, err)
	}
	if res, err = p.Service.Approve(ctx, res.Pending.ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	old := res.Certificate
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "key.pem"), 0o600, first.Key)
	writePEM(t, filepath.Join(dir, "cert.pem"), 0o644, nil, old)
	chain := p.Issuer().Chain
	text := fmt.Sprintf("once_attempts = 1\n\n[[certificate]]\nname = \"dev\"\nprotocol = \"scep\"\nurl = %q\nca_fingerprint = %q\nkey_path = \"key.pem\"\ncert_path = \"cert.pem\"\n",
		srv.URL+"/scep", client.Fingerprint(chain[len(chain)-1]))
	cfg, err := ParseConfig([]byte(text), dir)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", text, err)
	}
	p.Clock.Set(old.NotAfter.Add(-time.Hour))
	logs := &syncBuffer{}
	a := &Agent{Config: cfg, Clock: p.Clock, Log: slog.New(slog.NewTextHandler(logs, nil)), Jitter: func() float64 { return 0.5 },
		Sleep: func(ctx context.Context, d time.Duration) error { p.Clock.Advance(d); return ctx.Err() }}
	held := func() []pki.EnrollmentRequest {
		t.Helper()
		reqs, _, err := p.Store.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
		if err != nil {
			t.Fatal(err)
		}
		return reqs
	}
	for i := range 2 {
		if err := a.RunOnce(ctx); err == nil {
			t.Fatalf("run %d: a held request is not a success\n%s", i+1, logs)
		}
		if n := len(held()); n != 1 {
			t.Fatalf("run %d: %d requests held, want 1\n%s", i+1, n, logs)
		}
	}
	if n := strings.Count(logs.String(), askingAgain); n != 1 {
		t.Errorf("%d runs say they ask about the held request, want 1 (the second):\n%s", n, logs)
	}
	pending := held()[0]
	if _, err := p.Service.Approve(ctx, pending.ID, "cli:test"); err != nil {
		t.Fatal(err)
	}
	if err := a.RunOnce(ctx); err != nil {
		t.Fatalf("after the approval: %v\n%s", err, logs)
	}
	certs, err := keys.LoadCertFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(pending.CSR)
	if err != nil {
		t.Fatal(err)
	}
	if certs[0].Equal(old) || !pki.SamePublicKey(certs[0].PublicKey, csr.PublicKey) {
		t.Errorf("cert.pem is not the held request's certificate\n%s", logs)
	}
}
