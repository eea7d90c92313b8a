package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/keys"
)

// An EST 401 says what was refused (r101 D3): one whose WWW-Authenticate
// offers only Digest judged no password (the client sends Basic only, or
// a client certificate), and keeps the key; one to an `est enroll` that
// sent no password is final, as README says, and removes the key kept
// for it, without saying that credentials were refused; one to a run with
// a password refused the credentials, and keeps the key.
func TestESTUnauthorizedSaysWhatWasRefused(t *testing.T) {
	const digest = `Digest realm="est", qop="auth,auth-int", nonce="abc", algorithm=SHA-256`
	const digestNote = "; the server asks for HTTP Digest authentication (WWW-Authenticate), which scepter's EST client does not send: " +
		"it authenticates with HTTP Basic (a user and password) or a TLS client certificate, so no password was judged"
	for _, tt := range []struct {
		name         string
		reenroll     bool
		password     bool
		authenticate string
		want         []string
		kept         bool
	}{
		{"enroll, Digest, a password", false, true, digest, []string{"HTTP 401: no" + digestNote,
			"the key stays in ", "once the server takes HTTP Basic or a client certificate, run the same command again"}, true},
		{"enroll, Digest, no password", false, false, digest, []string{"HTTP 401: no" + digestNote, "the key stays in "}, true},
		{"enroll, Basic, no password", false, false, `Basic realm="est"`, []string{"HTTP 401: no; this run sent no password, and a 401 to it is final: the key kept for this request in ",
			"is removed (the next run makes a new one); give --user and a password"}, false},
		{"enroll, no WWW-Authenticate, no password", false, false, "", []string{"this run sent no password, and a 401 to it is final"}, false},
		{"enroll, Basic, a password", false, true, `Basic realm="est"`, []string{"the credentials were refused, not the key: the key stays in "}, true},
		{"reenroll --rekey, Digest, no password", true, false, digest, []string{"HTTP 401: no" + digestNote,
			"the new key stays in ", "once the server takes HTTP Basic or a client certificate"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &reenrollEST{t: t, refuse: http.StatusUnauthorized, authenticate: tt.authenticate}
			u, caFile := startReenrollEST(t, s)
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			args := []string{"est", "enroll", "--url", u, "--cacert", caFile, "--subject", "CN=auth-1", "--out", path("cert.pem"), "--key-out", path("key.pem")}
			keyAt := path("key.pem")
			if tt.reenroll {
				oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err := keys.WriteCertFile(path("old.pem"), s.issue(pkix.Name{CommonName: "device"}, oldKey.Public(), 50)); err != nil {
					t.Fatal(err)
				}
				if err := keys.WriteKeyFile(path("old-key.pem"), oldKey); err != nil {
					t.Fatal(err)
				}
				args = []string{"est", "reenroll", "--url", u, "--cacert", caFile, "--cert", path("old.pem"), "--key", path("old-key.pem"), "--rekey",
					"--out", path("old.pem"), "--key-out", path("old-key.pem")}
				keyAt = path("old-key.pem.pending")
			}
			vars := map[string]string{}
			if tt.password {
				vars["SCEPTER_EST_PASSWORD"] = "a long device password"
			}
			e, out, errb := testEnv(vars)
			err := run(context.Background(), e, args)
			if err == nil {
				t.Fatalf("succeeded\n%s%s", out, errb)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant it to say %q", err, w)
				}
			}
			if !tt.password && strings.Contains(err.Error(), "the credentials were refused") {
				t.Errorf("%v: no credentials were sent", err)
			}
			if tt.authenticate == digest && strings.Contains(err.Error(), "the credentials were refused") {
				t.Errorf("%v: the server judged no credentials", err)
			}
			_, keyErr := os.Stat(keyAt)
			if kept := keyErr == nil; kept != tt.kept {
				t.Errorf("%s kept: %v, want %v", keyAt, kept, tt.kept)
			}
		})
	}
}
