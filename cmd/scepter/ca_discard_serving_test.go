package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// 'ca rollover --discard' run beside a server that still holds the next
// CA (it reloads it at its next --ca-reload-interval) leaves nothing
// issued under it: the server, finding the responder the discard revoked,
// does not replace it under the discarded CA. Before (r93 D1), it issued a
// new responder certificate there, valid in the inventory, its key and
// certificate back in DATA/ocsp, carried by every export-keys after.
func TestCARolloverDiscardBesideARunningServer(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	serveArgs := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}
	first := serveInProcess(t, nil, serveArgs...)
	if first.ended {
		t.Fatalf("serve: %v\n%s", first.err, first.errb.String())
	}
	first.stop()
	if _, _, err := runCA(t, nil, data, "rollover", "--switch-in", "48h"); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(data, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	next, _, _ := a.Next(pki.SystemClock{}.Now())
	if next == nil {
		t.Fatal("no next CA after the rollover")
	}
	// A reload an hour away: the server holds the next CA all along.
	s := serveInProcess(t, nil, append(serveArgs, "--ca-reload-interval", "1h")...)
	if s.ended {
		t.Fatalf("serve: %v\n%s", s.err, s.errb.String())
	}
	responderCert := filepath.Join(data, responderDir, next.ID[:32]+".crt")
	certs, err := keys.LoadCertFile(responderCert)
	if err != nil {
		t.Fatalf("the server made no responder for the next CA: %v", err)
	}
	responder := certs[0]

	if out, errOut, err := runCA(t, nil, data, "rollover", "--discard"); err != nil || !strings.Contains(out, "Revoked in the inventory") {
		t.Fatalf("--discard: %v\n%s%s", err, out, errOut)
	}
	// An OCSP request about the next CA finds its responder revoked and
	// has the server look at it at once, as its minute's loop would.
	mark := len(s.errb.String())
	ocspRequest(t, s, responder, next)
	issued, skipped := "msg=\"OCSP responder certificate issued\"", "no OCSP responder certificate is issued under it"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		logs := s.errb.String()[mark:]
		if strings.Contains(logs, issued) || strings.Contains(logs, skipped) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not look at the revoked responder within 30 s:\n%s", logs)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	st, err := sqlite.Open(ctx, filepath.Join(data, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, _, err := st.ListCertificates(ctx, store.CertFilter{IssuerID: next.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.Status != pki.StatusRevoked {
			t.Errorf("%s (%s) of the discarded CA is %s, want revoked", pki.ShownSerial(c.SerialHex), c.Subject, c.Status)
		}
	}
	if len(all) != 2 {
		t.Errorf("the discarded CA issued %d certificates, want 2 (its RA's and its first responder's)", len(all))
	}
	entries, err := os.ReadDir(filepath.Join(data, responderDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), next.ID[:32]) {
			t.Errorf("%s left in %s", e.Name(), responderDir)
		}
	}
	if _, err := os.Stat(responderCert); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %v", responderCert, err)
	}
}

// ocspRequest asks the server s about cert, issued by issuer, over HTTP.
func ocspRequest(t *testing.T, s *inProcessServe, cert *x509.Certificate, issuer *ca.Issuer) {
	t.Helper()
	var base string
	for _, line := range strings.Split(s.out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "SCEP URL" {
			u, err := url.Parse(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			base = u.Scheme + "://" + u.Host
		}
	}
	if base == "" {
		t.Fatalf("no SCEP URL in serve's output:\n%s", s.out.String())
	}
	req, err := xocsp.CreateRequest(cert, issuer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/ocsp", "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OCSP: HTTP %d", resp.StatusCode)
	}
}
