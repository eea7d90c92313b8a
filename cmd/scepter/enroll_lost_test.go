package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// SCEP `scepter enroll` keeps its key (0600, with its marker) before it
// sends the PKIOperation (r117 D3): when the answer is lost after the
// server issued (a proxy's 502, a connection reset) and used up the
// one-time challenge, the same command asks again with that key, in the
// same transaction, and scepter's server answers with the certificate it
// issued for it. An answer that came and cannot be used keeps it too; a
// refused challenge keeps it, saying so.
func TestEnrollKeepsItsKeyWhenTheAnswerIsLost(t *testing.T) {
	s := startServe(t, "")
	target, err := url.Parse(s.scepURL)
	if err != nil {
		t.Fatal(err)
	}
	// mode: "" passes every request through; "lost" forwards the
	// PKIOperation and answers 502 instead of the server's answer;
	// "reset" forwards it and closes the connection; "junk" forwards it
	// and answers 200 with a DER body that is no CertRep.
	var mode atomic.Value
	mode.Store("")
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u := *target
		u.RawQuery = r.URL.RawQuery
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if r.URL.Query().Get("operation") == "PKIOperation" {
			switch mode.Load().(string) {
			case "lost":
				http.Error(w, "Bad Gateway", http.StatusBadGateway)
				return
			case "reset":
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return
			case "junk":
				w.Header().Set("Content-Type", "application/x-pki-message")
				w.Write([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
				return
			}
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	}))
	t.Cleanup(front.Close)
	newChallenge := func(t *testing.T) string {
		e, out, errb := testEnv(nil)
		if err := run(context.Background(), e, []string{"challenge", "new", "--data-dir", s.dataDir, "--ttl", "1h"}); err != nil {
			t.Fatalf("challenge new: %v\n%s", err, errb)
		}
		return strings.TrimSpace(out.String())
	}
	for _, tt := range []struct {
		name      string
		mode      string
		challenge string // "" for a new one-time challenge
		want      []string
	}{
		{"answer lost", "lost", "", []string{"HTTP 502", "no answer came, so the certificate may have been issued", "run the same command again, which asks again with that key"}},
		{"connection reset", "reset", "", []string{"no answer came, so the certificate may have been issued"}},
		{"an answer that is no CertRep", "junk", "", []string{"the key made for this request stays in ", "run the same command again, which asks with it"}},
		{"wrong challenge", "", "not the challenge", []string{"failInfo badRequest", "the challenge was refused, not the key: the key stays in "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mode.Store(tt.mode)
			d := t.TempDir()
			path := func(name string) string { return filepath.Join(d, name) }
			challenge := newChallenge(t)
			first := challenge
			if tt.challenge != "" {
				first = tt.challenge
			}
			enroll := func(ch string) (string, error) {
				return runCLI("enroll", "--url", front.URL+target.Path, "--ca-fingerprint", s.fingerprint, "--challenge", ch,
					"--subject", "CN=lost-"+tt.mode, "--out", path("cert.pem"), "--key-out", path("key.pem"))
			}
			out, err := enroll(first)
			if err == nil {
				t.Fatalf("first enroll succeeded\n%s", out)
			}
			for _, w := range append(tt.want, path("key.pem")) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("first enroll: %v; want it to say %q", err, w)
				}
			}
			if _, err := os.Stat(path("cert.pem")); !os.IsNotExist(err) {
				t.Errorf("cert.pem after the failed enroll: %v", err)
			}
			fi, err := os.Stat(path("key.pem"))
			if err != nil {
				t.Fatalf("key.pem is not kept: %v", err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key.pem has mode %v, want 0600", fi.Mode().Perm())
			}
			if _, err := os.Stat(path("key.pem" + heldMarkerSuffix)); err != nil {
				t.Errorf("key.pem's marker: %v", err)
			}
			kept := loadKey(t, path("key.pem")).Public()
			issuedBefore := s.issuedFor(t, "CN=lost-"+tt.mode)

			mode.Store("")
			out, err = enroll(challenge)
			if err != nil {
				t.Fatalf("enroll again with the same challenge: %v\n%s", err, out)
			}
			if !strings.Contains(out, "using the key in "+path("key.pem")) {
				t.Errorf("the second run does not say it takes the kept key up:\n%s", out)
			}
			if !pki.SamePublicKey(kept, certKey(t, path("cert.pem"))) {
				t.Error("the certificate is not for the key kept by the first run")
			}
			if _, err := os.Stat(path("key.pem" + heldMarkerSuffix)); !os.IsNotExist(err) {
				t.Errorf("the marker is left after the certificate was issued: %v", err)
			}
			// An answer lost after the server issued: the second run is
			// given that certificate, not a second one.
			issuedAfter := s.issuedFor(t, "CN=lost-"+tt.mode)
			if tt.mode != "" && (len(issuedBefore) != 1 || len(issuedAfter) != 1 || issuedAfter[0] != issuedBefore[0]) {
				t.Errorf("issued before the second run: %v, after: %v; want the same one certificate", issuedBefore, issuedAfter)
			}
		})
	}
}

// issuedFor lists the serials of the certificates issued for subject, as
// `certs list` shows them.
func (s *testServer) issuedFor(t *testing.T, subject string) []string {
	t.Helper()
	e, out, errb := testEnv(nil)
	if err := run(context.Background(), e, []string{"certs", "list", "--data-dir", s.dataDir}); err != nil {
		t.Fatalf("certs list: %v\n%s", err, errb)
	}
	var serials []string
	for _, line := range strings.Split(out.String(), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && strings.HasSuffix(line, subject) {
			serials = append(serials, fields[0])
		}
	}
	return serials
}
