package agent

import (
	"context"
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
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	pkifixture "github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

// The agent renews a certificate with an EC key over SCEP from a real
// server without a challenge_file: the renewal is authenticated by the
// certificate, and the reply's password-based envelope is keyed from a
// challenge the renewer makes up. A configured challenge_file is still
// used (for servers that want one).
func TestSCEPRenewsECKeyWithoutChallengeFile(t *testing.T) {
	for _, tt := range []struct {
		name, challenge string // challenge_file's content; "" for none
	}{
		{"no challenge_file", ""},
		{"challenge_file", pkifixture.Challenge},
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

			old, oldKey := p.Issue(t, "ec-device")
			dir := t.TempDir()
			writePEM(t, filepath.Join(dir, "key.pem"), 0o600, oldKey)
			writePEM(t, filepath.Join(dir, "cert.pem"), 0o644, nil, old)
			extra := ""
			if tt.challenge != "" {
				if err := os.WriteFile(filepath.Join(dir, "challenge.txt"), []byte(tt.challenge+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				extra = "challenge_file = \"challenge.txt\"\n"
			}
			chain := p.Issuer().Chain
			text := fmt.Sprintf("once_attempts = 1\n\n[[certificate]]\nname = \"dev\"\nprotocol = \"scep\"\nurl = %q\nca_fingerprint = %q\nkey_path = \"key.pem\"\ncert_path = \"cert.pem\"\n%s",
				srv.URL+"/scep", client.Fingerprint(chain[len(chain)-1]), extra)
			cfg, err := ParseConfig([]byte(text), dir)
			if err != nil {
				t.Fatalf("config:\n%s\n%v", text, err)
			}
			// Due for the agent and inside the server's renewal window.
			p.Clock.Set(old.NotAfter.Add(-time.Hour))
			logs := &syncBuffer{}
			a := &Agent{Config: cfg, Clock: p.Clock, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Jitter: func() float64 { return 0.5 },
				Sleep:  func(ctx context.Context, d time.Duration) error { p.Clock.Advance(d); return ctx.Err() }}
			if err := a.RunOnce(context.Background()); err != nil {
				t.Fatalf("RunOnce: %v\n%s", err, logs)
			}
			certs, err := keys.LoadCertFile(filepath.Join(dir, "cert.pem"))
			if err != nil {
				t.Fatal(err)
			}
			renewed := certs[0]
			if renewed.Equal(old) || !renewed.NotAfter.After(old.NotAfter) {
				t.Fatalf("cert.pem was not renewed\n%s", logs)
			}
			key, err := keys.LoadKeyFile(filepath.Join(dir, "key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if !pki.SamePublicKey(renewed.PublicKey, key.Public()) {
				t.Error("the renewed certificate is not for key.pem")
			}
			if strings.Contains(strings.ReplaceAll(logs.String(), dir, ""), "challenge") {
				t.Errorf("the agent talks of a challenge:\n%s", logs)
			}
		})
	}
}
