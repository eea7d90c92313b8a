//go:build unix

package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
)

// A key and certificate that someone put in place of the agent's (renamed
// over its links) are a failure of their certificate, due or not: not
// "not due for renewal", and no renewal asked for with them. Before, a
// self-signed certificate in place of the agent's was "not due", exit 0.
// One the pinned CA issued passes; so does one that cannot be checked
// because the server cannot be reached (with a warning).
func TestCertificateInPlaceMustChainToThePinnedCA(t *testing.T) {
	for _, tt := range []struct {
		name  string
		swap  string // "self-signed", "other CA", "same CA", "cert only"
		due   bool
		caErr error
		want  string // in the log when it fails; "" when it passes
	}{
		{name: "self-signed, not due", swap: "self-signed", want: "does not chain to the pinned CA"},
		{name: "self-signed, due", swap: "self-signed", due: true, want: "does not chain to the pinned CA"},
		{name: "another CA's, not due", swap: "other CA", want: "does not chain to the pinned CA"},
		{name: "another CA's, due", swap: "other CA", due: true, want: "does not chain to the pinned CA"},
		{name: "a certificate without its key", swap: "cert only", want: ErrMismatch.Error()},
		{name: "the pinned CA's, not due", swap: "same CA"},
		{name: "the pinned CA's, due", swap: "same CA", due: true},
		{name: "the server cannot be reached", swap: "self-signed", caErr: errors.New("connection refused")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.cfg.OnceAttempts = 1
			// A first renewal moves the files into the agent's
			// generations, and key_path and cert_path become links.
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			renewed := f.pair().cert
			calls, posts := f.renewer.count(), f.postRuns()
			// Someone who may write the directory renames their own
			// pair over the links.
			key, err := keys.Generate(keys.P256)
			if err != nil {
				t.Fatal(err)
			}
			now := f.clock.Now()
			var cert *x509.Certificate
			switch tt.swap {
			case "self-signed", "cert only":
				cert = selfSigned(t, key, now)
			case "other CA":
				cert = newTestCA(t, now, false).issue(t, key.Public(), renewed.Subject, renewed.DNSNames, now, 30*24*time.Hour)
			case "same CA":
				cert = f.ca.issue(t, key.Public(), renewed.Subject, renewed.DNSNames, now, 30*24*time.Hour)
			}
			if tt.swap != "cert only" {
				writePEM(t, filepath.Join(f.dir, "new-key"), 0o600, key)
				if err := os.Rename(filepath.Join(f.dir, "new-key"), filepath.Join(f.dir, "key.pem")); err != nil {
					t.Fatal(err)
				}
			}
			writePEM(t, filepath.Join(f.dir, "new-cert"), 0o644, nil, cert)
			if err := os.Rename(filepath.Join(f.dir, "new-cert"), filepath.Join(f.dir, "cert.pem")); err != nil {
				t.Fatal(err)
			}
			f.renewer.caErr = tt.caErr
			if tt.due {
				f.clock.Set(cert.NotAfter.Add(-time.Hour))
			}
			// `agent status` asks no server: a self-signed certificate is
			// its problem; another CA's may have an issuer only the
			// server knows.
			problem := f.agent.Status()[0].Problem
			if wantProblem := tt.swap == "self-signed" || tt.swap == "cert only"; (problem != nil) != wantProblem {
				t.Errorf("status problem: %v, want one: %v", problem, wantProblem)
			}
			logged := len(f.logs.String())
			err = f.agent.RunOnce(context.Background())
			log := f.logs.String()[logged:]
			if tt.want == "" {
				if err != nil {
					t.Fatalf("RunOnce: %v", err)
				}
				if tt.caErr != nil && !strings.Contains(log, "could not fetch the CA certificates") {
					t.Errorf("no warning that it could not be checked:\n%s", log)
				}
				return
			}
			if err == nil {
				t.Fatal("RunOnce: no error")
			}
			if !strings.Contains(log, tt.want) {
				t.Errorf("the log does not say %q:\n%s", tt.want, log)
			}
			if strings.Contains(log, "not due for renewal") {
				t.Errorf("the log says \"not due for renewal\":\n%s", log)
			}
			if f.renewer.count() != calls || f.postRuns() != posts {
				t.Errorf("renewals %d -> %d, post_renew %d -> %d: something was done with it", calls, f.renewer.count(), posts, f.postRuns())
			}
			if got, err := os.ReadFile(filepath.Join(f.dir, "cert.pem")); err != nil || !strings.Contains(string(got), "CERTIFICATE") {
				t.Errorf("cert.pem: %v", err)
			} else if p, err := keys.ParseCertsPEM(got); err != nil || !p[0].Equal(cert) {
				t.Error("cert.pem was changed")
			}
		})
	}
}

func selfSigned(t *testing.T, key crypto.Signer, now time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(666), Subject: pkix.Name{CommonName: "evil"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Over EST, the CA certificates the certificate in place is checked
// against come from the server's /cacerts: the pinned CA's certificate
// passes, not due; a self-signed one in its place fails.
func TestCertificateInPlaceCheckedAgainstCACerts(t *testing.T) {
	for _, swap := range []bool{false, true} {
		f := newFixture(t, fixtureOpts{intermediate: true})
		newClockServer(t, f, 0, false)
		f.cfg.OnceAttempts = 1
		if swap {
			key, err := keys.Generate(keys.P256)
			if err != nil {
				t.Fatal(err)
			}
			writePEM(t, filepath.Join(f.dir, "key.pem"), 0o600, key)
			writePEM(t, filepath.Join(f.dir, "cert.pem"), 0o644, nil, selfSigned(t, key, f.clock.Now()))
		}
		err := f.agent.RunOnce(context.Background())
		log := f.logs.String()
		switch {
		case !swap && (err != nil || !strings.Contains(log, "not due for renewal")):
			t.Errorf("the pinned CA's certificate: err = %v\n%s", err, log)
		case swap && (err == nil || !strings.Contains(log, "does not chain to the pinned CA") || strings.Contains(log, "not due")):
			t.Errorf("a self-signed certificate: err = %v\n%s", err, log)
		}
	}
}
