package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	pkifixture "github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
)

// A renewal answered 503 (server busy; with or without Retry-After) by a
// real SCEP or EST server keeps the new key made for it, and the attempt
// says so: that it kept the key, where (pending-key.pem in the state
// directory), and that the next attempt asks with it; it never calls the
// request held for approval, which none was. The next run asks again with
// that key, saying it was kept after an answer that gave no certificate,
// and installs the certificate issued for it. Before, the failure said
// nothing of the kept key, and the next run took it up as "held for
// approval, or whose answer never got installed".
func TestKeptKeyAfterA503(t *testing.T) {
	for _, tt := range []struct {
		protocol   string
		retryAfter string // the 503's Retry-After, "" for none
	}{
		{ProtocolSCEP, ""},
		{ProtocolSCEP, "120"},
		{ProtocolEST, ""},
		{ProtocolEST, "120"},
	} {
		name := tt.protocol
		if tt.retryAfter != "" {
			name += ", Retry-After"
		}
		t.Run(name, func(t *testing.T) {
			p := pkifixture.New(t, pkifixture.Options{})
			scepH, err := scepserver.New(p.Service, p.Clock, p.Log, scepserver.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var busy atomic.Int32 // renewal requests still to answer 503
			busy.Store(1)
			var renewals atomic.Int32
			unavailable := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					renewal := r.URL.Query().Get("operation") == "PKIOperation" || strings.HasSuffix(r.URL.Path, "/"+est.OpSimpleReenroll)
					if renewal {
						renewals.Add(1)
					}
					if renewal && busy.Add(-1) >= 0 {
						if tt.retryAfter != "" {
							w.Header().Set("Retry-After", tt.retryAfter)
						}
						http.Error(w, "server busy", http.StatusServiceUnavailable)
						return
					}
					next.ServeHTTP(w, r)
				})
			}
			// Due, and the EST server's TLS certificate made for that time.
			old, key := p.Issue(t, "busy-device")
			p.Clock.Set(old.NotAfter.Add(-time.Hour))
			var url string
			switch tt.protocol {
			case ProtocolSCEP:
				mux := http.NewServeMux()
				for pattern, handler := range scepH.Routes() {
					mux.Handle(pattern, handler)
				}
				srv := httptest.NewServer(unavailable(mux))
				t.Cleanup(srv.Close)
				url = srv.URL + "/scep"
			case ProtocolEST:
				mux, err := server.TLSMux(server.Handlers{EST: estserver.New(p.Service, p.Log, estserver.Options{})})
				if err != nil {
					t.Fatal(err)
				}
				cert, _, err := server.ManagedCertificate(context.Background(), filepath.Join(p.Dir, "tls"), []string{"127.0.0.1"}, p.Service, "", p.Clock, p.Log)
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewUnstartedServer(unavailable(mux))
				srv.TLS = server.TLSConfig(cert.GetCertificate, 0, 0)
				pair, _ := cert.GetCertificate(nil)
				srv.TLS.Certificates, srv.TLS.GetCertificate = []tls.Certificate{*pair}, nil
				srv.StartTLS()
				t.Cleanup(srv.Close)
				url = srv.URL
			}

			dir := t.TempDir()
			writePEM(t, filepath.Join(dir, "key.pem"), 0o600, key)
			writePEM(t, filepath.Join(dir, "cert.pem"), 0o644, nil, old)
			chain := p.Issuer().Chain
			text := fmt.Sprintf("once_attempts = 1\n\n[[certificate]]\nname = \"dev\"\nprotocol = %q\nurl = %q\nca_fingerprint = %q\nkey_path = \"key.pem\"\ncert_path = \"cert.pem\"\n",
				tt.protocol, url, client.Fingerprint(chain[len(chain)-1]))
			cfg, err := ParseConfig([]byte(text), dir)
			if err != nil {
				t.Fatalf("config:\n%s\n%v", text, err)
			}
			logs := &syncBuffer{}
			a := &Agent{Config: cfg, Clock: p.Clock, Log: slog.New(slog.NewTextHandler(logs, nil)), Jitter: func() float64 { return 0.5 },
				Sleep: func(ctx context.Context, d time.Duration) error { p.Clock.Advance(d); return ctx.Err() }}
			ctx := context.Background()
			state := newLayout(&cfg.Certificates[0], nil).state
			keptAt := filepath.Join(state, pendingKeyPEM)

			o := a.check(ctx, &cfg.Certificates[0], doAll)
			first := logs.String()
			if o.err == nil || !strings.Contains(o.err.Error(), "HTTP 503") {
				t.Fatalf("the first attempt: %v, want the 503\n%s", o.err, first)
			}
			wantWait := time.Duration(0)
			if tt.retryAfter != "" {
				wantWait = 120 * time.Second
			}
			if !o.retry || o.retryAfter != wantWait {
				t.Errorf("the first attempt: retry %v, Retry-After %s; want a retry after %s", o.retry, o.retryAfter, wantWait)
			}
			kept, err := keys.LoadKeyFile(keptAt)
			if err != nil {
				t.Fatalf("the new key is not kept after the 503: %v\n%s", err, first)
			}
			if _, err := os.Stat(filepath.Join(state, pendingSentName)); err != nil {
				t.Errorf("no record that the request with the kept key was sent: %v", err)
			}
			for _, want := range []string{"the new key made for this renewal is kept", keptAt, "the next attempt asks with it"} {
				if !strings.Contains(first, want) {
					t.Errorf("the first run does not say %q:\n%s", want, first)
				}
			}
			if strings.Contains(first, "held for approval") {
				t.Errorf("the first run speaks of a request held for approval, and none was:\n%s", first)
			}

			if err := a.RunOnce(ctx); err != nil {
				t.Fatalf("the second run: %v\n%s", err, logs)
			}
			second := strings.TrimPrefix(logs.String(), first)
			if !strings.Contains(second, askingAgain+", kept by an attempt that got no certificate installed") {
				t.Errorf("the second run does not say it asks again with the key kept after an answer without a certificate:\n%s", second)
			}
			if strings.Contains(second, "held for approval") {
				t.Errorf("the second run speaks of a request held for approval, and none was:\n%s", second)
			}
			installed, err := keys.LoadCertFile(filepath.Join(dir, "cert.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if installed[0].Equal(old) || !pki.SamePublicKey(installed[0].PublicKey, kept.Public()) {
				t.Error("cert.pem is not a certificate for the key kept after the 503")
			}
			if inPlace, err := keys.LoadKeyFile(filepath.Join(dir, "key.pem")); err != nil || !pki.SamePublicKey(inPlace.Public(), kept.Public()) {
				t.Error("key.pem is not the key kept after the 503")
			}
			if _, err := os.Stat(keptAt); !os.IsNotExist(err) {
				t.Errorf("the kept key is left after its certificate was installed: %v", err)
			}
			if n := renewals.Load(); n != 2 {
				t.Errorf("%d renewal requests, want 2", n)
			}
		})
	}
}

// What the agent says of a kept key follows what its request's answers
// were, as `est enroll` does (r112 D1): "held for approval" only once the
// server held it (SCEP PENDING, EST 202), and from then on whatever later
// answers say; a key kept after answers that held nothing (a 503, 429, a
// lost answer) is named as such; a record of an older build, which does
// not say, keeps its old words. Each failure says where the key is kept.
func TestKeptKeyWordsWhetherItWasHeld(t *testing.T) {
	unavailable := &client.HTTPError{Status: http.StatusServiceUnavailable, Reason: "server busy"}
	held := &client.PendingError{TransactionID: "T1"}
	const (
		noCert  = askingAgain + ", kept by an attempt that got no certificate installed"
		wasHeld = askingAgain + ", which was held for approval"
		either  = askingAgain + " (held for approval, or whose answer never got installed)"
		keptNew = "the new key made for this renewal is kept; the next attempt asks with it"
		keptFor = "the request is held for approval; its new key is kept, and the next attempt asks about it with that key"
	)
	type run struct {
		err       error // nil: the certificate is issued
		oldRecord bool  // pending-key.sent rewritten as an older build wrote it, before this run
		takeUp    string
		kept      string // what the failure says of the key
	}
	for _, tt := range []struct {
		name string
		runs []run
	}{
		{"503, 503, issued", []run{{err: unavailable, kept: keptNew}, {err: unavailable, takeUp: noCert, kept: keptNew}, {takeUp: noCert}}},
		{"503, held, 503, issued", []run{{err: unavailable, kept: keptNew}, {err: held, takeUp: noCert, kept: keptFor},
			{err: unavailable, takeUp: wasHeld, kept: keptFor}, {takeUp: wasHeld}}},
		{"held, issued", []run{{err: held, kept: keptFor}, {takeUp: wasHeld}}},
		{"an older build's record", []run{{err: unavailable, kept: keptNew}, {err: unavailable, oldRecord: true, takeUp: either, kept: keptNew}, {takeUp: either}}},
		{"an older build's record, then held", []run{{err: unavailable, kept: keptNew}, {err: held, oldRecord: true, takeUp: either, kept: keptFor}, {takeUp: wasHeld}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.cfg.OnceAttempts = 1
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			state := newLayout(f.cert(), nil).state
			keptAt := filepath.Join(state, pendingKeyPEM)
			for i, r := range tt.runs {
				if r.oldRecord {
					record := filepath.Join(state, pendingSentName)
					data, err := os.ReadFile(record)
					if err != nil {
						t.Fatal(err)
					}
					var lines []string
					for _, l := range strings.Split(string(data), "\n") {
						if !strings.HasPrefix(l, pendingHeldLine+" ") {
							lines = append(lines, l)
						}
					}
					if err := os.WriteFile(record, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				f.renewer.mu.Lock()
				f.renewer.failFor, f.renewer.err = 0, nil
				if r.err != nil {
					f.renewer.failFor, f.renewer.err = f.renewer.calls+1, r.err
				}
				f.renewer.mu.Unlock()
				mark := len(f.logs.String())
				err := f.agent.RunOnce(context.Background())
				logs := f.logs.String()[mark:]
				if (err == nil) != (r.err == nil) {
					t.Fatalf("run %d: %v\n%s", i+1, err, logs)
				}
				for _, line := range strings.Split(logs, "\n") {
					if !strings.Contains(line, askingAgain) {
						continue
					}
					if r.takeUp == "" || !strings.Contains(line, r.takeUp) {
						t.Errorf("run %d takes the key up saying\n%s\nwant %q", i+1, line, r.takeUp)
					}
				}
				if r.takeUp != "" && !strings.Contains(logs, r.takeUp) {
					t.Errorf("run %d does not say %q:\n%s", i+1, r.takeUp, logs)
				}
				if r.kept != "" && !strings.Contains(logs, r.kept+`" cert=dev key=`+keptAt) {
					t.Errorf("run %d does not say %q, key=%s:\n%s", i+1, r.kept, keptAt, logs)
				}
				if r.kept != keptFor && strings.Contains(logs, keptFor) || r.kept != keptNew && strings.Contains(logs, keptNew) {
					t.Errorf("run %d says the wrong thing of the kept key (want %q):\n%s", i+1, r.kept, logs)
				}
			}
			f.renewer.mu.Lock()
			defer f.renewer.mu.Unlock()
			for i, k := range f.renewer.keys {
				if !pki.SamePublicKey(k, f.renewer.keys[0]) {
					t.Errorf("request %d asked with another key than the first", i+1)
				}
			}
			if !pki.SamePublicKey(f.pair().key.Public(), f.renewer.keys[0]) {
				t.Error("the installed key is not the one kept by the first run")
			}
			expectClean(t, f)
		})
	}
}
