package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/est"
)

// clockServer is an EST server and an OCSP responder on 127.0.0.1 for
// the fixture's CA, whose clock is the fixture's plus ahead: it issues
// renewals starting at its own now and, with revokeSuperseded, revokes the
// certificate a renewal replaces (the client certificate of the TLS
// connection), as a profile with revoke_superseded does.
type clockServer struct {
	f                *fixture
	ahead            time.Duration
	revokeSuperseded bool
	url              string // of the OCSP responder (/ocsp) and the CRL (/crl)

	mu sync.Mutex
	// signers are the CAs whose OCSP answers and CRLs it signs (the
	// fixture's, and those of a rollover); the one asked about is found
	// by its name.
	signers []signer
	revoked map[string]bool // serials, in hex
	// crlSigner, when set, signs the CRL instead of the certificate in
	// place's issuer (a CA that took its name).
	crlSigner *signer
	issued    []*x509.Certificate
	asked     int // OCSP questions and CRL fetches
	// askedAt are their times on the agent's clock.
	askedAt []time.Time
	// nextUpdate, when set, is the nextUpdate of the OCSP answers and
	// CRLs: the agent's clock plus it, or none when negative (an OCSP
	// answer may leave it out). Unset, it is an hour after the
	// server's now.
	nextUpdate time.Duration
}

// times are the thisUpdate and nextUpdate of an answer signed now.
func (s *clockServer) times() (this, next time.Time) {
	now := s.now()
	switch {
	case s.nextUpdate < 0:
		return now.Add(-time.Minute), time.Time{}
	case s.nextUpdate > 0:
		at := s.f.clock.Now()
		return at.Add(-time.Minute), at.Add(s.nextUpdate)
	}
	return now.Add(-time.Minute), now.Add(time.Hour)
}

type signer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (s *clockServer) addSigner(cert *x509.Certificate, key crypto.Signer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signers = append(s.signers, signer{cert, key})
}

// signerOf is the CA that issued cert.
func (s *clockServer) signerOf(cert *x509.Certificate) *signer {
	for i := range s.signers {
		if cert.CheckSignatureFrom(s.signers[i].cert) == nil {
			return &s.signers[i]
		}
	}
	return nil
}

func (s *clockServer) now() time.Time { return s.f.clock.Now().Add(s.ahead) }

func (s *clockServer) revoke(c *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[c.SerialNumber.Text(16)] = true
}

// newClockServer starts the servers and points the fixture's certificate
// at them: its certificate is reissued with the responder's URL, and it
// renews over EST with the real client.
func newClockServer(t *testing.T, f *fixture, ahead time.Duration, revokeSuperseded bool) *clockServer {
	t.Helper()
	s := &clockServer{f: f, ahead: ahead, revokeSuperseded: revokeSuperseded, revoked: map[string]bool{}}
	s.addSigner(f.ca.cert, f.ca.key)
	if f.ca.inter != nil {
		s.addSigner(f.ca.inter, f.ca.interKey)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ocsp", s.serveOCSP)
	mux.HandleFunc("/crl", s.serveCRL)
	responder := httptest.NewServer(mux)
	t.Cleanup(responder.Close)
	s.url = responder.URL
	f.ca.ocspURL = responder.URL + "/ocsp"

	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(365 * 24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, f.ca.cert, tlsKey.Public(), f.ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serveEST))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}}, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// The certificate in place, reissued with the OCSP URL (same key).
	key := f.pair().key
	f.first = f.ca.issue(t, key.Public(), f.first.Subject, f.first.DNSNames, epoch, f.first.NotAfter.Sub(f.first.NotBefore))
	writePEM(t, filepath.Join(f.dir, "cert.pem"), 0o644, nil, f.first)
	c := f.cert()
	c.Protocol, c.URL = ProtocolEST, srv.URL
	f.agent.Renewers = nil
	return s
}

func (s *clockServer) serveEST(w http.ResponseWriter, r *http.Request) {
	reply := func(certs ...*x509.Certificate) {
		der, _ := cms.DegenerateCertificates(certs)
		w.Header().Set("Content-Type", est.ContentTypeCertsOnly)
		w.Write(est.EncodeBase64(der))
	}
	switch strings.TrimPrefix(r.URL.Path, est.PathPrefix) {
	case est.OpCACerts:
		reply(s.f.ca.certs()...)
	case est.OpCSRAttrs:
		w.WriteHeader(http.StatusNoContent)
	case est.OpSimpleReenroll:
		b, _ := io.ReadAll(r.Body)
		der, err := est.DecodeBase64(b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		c := s.f.ca.issue(s.f.t, req.PublicKey, req.Subject, req.DNSNames, s.now(), 30*24*time.Hour)
		s.issued = append(s.issued, c)
		if s.revokeSuperseded && len(r.TLS.PeerCertificates) > 0 {
			s.revoked[r.TLS.PeerCertificates[0].SerialNumber.Text(16)] = true
		}
		reply(c)
	default:
		http.NotFound(w, r)
	}
}

func (s *clockServer) serveOCSP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req, err := ocsp.ParseRequest(b)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	s.askedAt = append(s.askedAt, s.f.clock.Now())
	now := s.now()
	this, next := s.times()
	tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: this, NextUpdate: next}
	if s.revoked[req.SerialNumber.Text(16)] {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, now.Add(-time.Second), ocsp.Superseded
	}
	var issuer *signer
	for i, sg := range s.signers {
		h := req.HashAlgorithm.New()
		h.Write(sg.cert.RawSubject)
		if bytes.Equal(h.Sum(nil), req.IssuerNameHash) {
			issuer = &s.signers[i]
		}
	}
	if issuer == nil {
		http.Error(w, "unknown issuer", http.StatusNotFound)
		return
	}
	der, err := ocsp.CreateResponse(issuer.cert, issuer.cert, tmpl, issuer.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}

// serveCRL serves the CRL of the certificate in place's issuer, listing
// every serial revoked.
func (s *clockServer) serveCRL(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	s.askedAt = append(s.askedAt, s.f.clock.Now())
	issuer := s.signerOf(s.f.first)
	if s.crlSigner != nil {
		issuer = s.crlSigner
	}
	if issuer == nil {
		http.Error(w, "unknown issuer", http.StatusNotFound)
		return
	}
	now := s.now()
	this, next := s.times()
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: this, NextUpdate: next}
	for serial := range s.revoked {
		n, _ := new(big.Int).SetString(serial, 16)
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: now.Add(-time.Second)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer.cert, issuer.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Write(der)
}

func (s *clockServer) lastIssued() *x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.issued) == 0 {
		return nil
	}
	return s.issued[len(s.issued)-1]
}

func (f *fixture) parkedPath() string { return filepath.Join(f.dir, stateDirName, "dev", parkedPEM) }

// A renewal that starts after the agent's clock: a few minutes are the
// drift of servers that stamp their own now, and it is installed at once.
// Further, whose clock is wrong cannot be told from the certificate: it is
// installed at once only when the certificate in place is of no use any
// more (revoked, as a server with revoke_superseded does, or expired);
// otherwise it is parked, and installed when the agent's clock reaches its
// start. post_renew runs when the certificate in place changes, never for
// one parked.
func TestRenewalThatStartsAfterTheLocalClock(t *testing.T) {
	for _, tt := range []struct {
		name             string
		ahead            time.Duration
		revokeSuperseded bool
		expired          bool // the renewal is asked for after the old one expired
		noOCSP           bool // the responder is down
		installed        bool // at once
		log              string
	}{
		{"a few minutes: the drift of a server's now", 2 * time.Minute, false, false, false, true, "the local clock is behind"},
		{"the server's clock ahead: the good certificate stays", 2*time.Hour + 10*time.Minute, false, false, false, false, "the certificate in place stays"},
		{"this clock behind, the old one revoked as superseded", time.Hour, true, false, false, true, "installing it now: the certificate in place is revoked"},
		{"the old one expired", time.Hour, false, true, false, true, "installing it now: the certificate in place has expired"},
		{"the responder down: not known revoked", time.Hour, true, false, true, false, "could not learn from OCSP"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			s := newClockServer(t, f, tt.ahead, tt.revokeSuperseded)
			if tt.noOCSP {
				f.ca.ocspURL = "http://127.0.0.1:1/ocsp"
				f.first = f.ca.issue(t, f.pair().key.Public(), f.first.Subject, f.first.DNSNames, epoch, 30*24*time.Hour)
				writePEM(t, filepath.Join(f.dir, "cert.pem"), 0o644, nil, f.first)
			}
			at := RenewalPoint(f.first, 0)
			if tt.expired {
				at = f.first.NotAfter.Add(time.Hour)
			}
			f.clock.Set(at)
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			issued := s.lastIssued()
			if issued == nil {
				t.Fatal("nothing was renewed")
			}
			if !strings.Contains(f.logs.String(), tt.log) {
				t.Errorf("the log does not say %q", tt.log)
			}
			if tt.installed {
				if !f.pair().cert.Equal(issued) || f.postRuns() != 1 {
					t.Fatalf("installed %v, post_renew ran %d times; want the renewal installed and post_renew once", f.pair().cert.Equal(issued), f.postRuns())
				}
				if _, err := os.Lstat(f.parkedPath()); !os.IsNotExist(err) {
					t.Errorf("a renewal installed at once left %s: %v", parkedPEM, err)
				}
				return
			}
			if !f.pair().cert.Equal(f.first) || f.postRuns() != 0 {
				t.Fatalf("the certificate in place changed (or post_renew ran %d times) for a renewal that starts %s later", f.postRuns(), tt.ahead)
			}
			expectMode(t, f.parkedPath(), 0o600)
			// Not yet: a second before its start, nothing changes, and
			// nothing is asked of the server again.
			f.clock.Set(issued.NotBefore.Add(-time.Second))
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !f.pair().cert.Equal(f.first) || len(s.issued) != 1 || f.postRuns() != 0 {
				t.Fatalf("before its start: in place is the new one %v, %d renewals, %d post_renew runs", f.pair().cert.Equal(issued), len(s.issued), f.postRuns())
			}
			// At its start it is installed, once, with post_renew.
			f.clock.Set(issued.NotBefore)
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !f.pair().cert.Equal(issued) || len(s.issued) != 1 || f.postRuns() != 1 {
				t.Fatalf("at its start: installed %v, %d renewals, %d post_renew runs; want installed, 1, 1", f.pair().cert.Equal(issued), len(s.issued), f.postRuns())
			}
			if _, err := os.Lstat(f.parkedPath()); !os.IsNotExist(err) {
				t.Errorf("%s is still there after its install: %v", parkedPEM, err)
			}
			if err := f.agent.RunOnce(context.Background()); err != nil || f.postRuns() != 1 {
				t.Errorf("a run after the install: %v, post_renew ran %d times", err, f.postRuns())
			}
			expectClean(t, f)
		})
	}
}

// The long-running agent wakes up at the parked certificate's start, and
// installs it then; a certificate in place that is revoked meanwhile, or
// that expires first, gives way at once; a parked pair is picked up by an
// agent started afresh, and one that no longer belongs to the certificate
// in place is discarded.
func TestParkedRenewal(t *testing.T) {
	const ahead = 2*time.Hour + 10*time.Minute
	park := func(t *testing.T, life time.Duration) (*fixture, *clockServer, *x509.Certificate) {
		f := newFixture(t, fixtureOpts{life: life})
		s := newClockServer(t, f, ahead, false)
		f.clock.Set(RenewalPoint(f.first, 0))
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		issued := s.lastIssued()
		if issued == nil || !f.pair().cert.Equal(f.first) {
			t.Fatal("want a renewal parked and the certificate in place kept")
		}
		return f, s, issued
	}

	t.Run("the long-running agent wakes at its start", func(t *testing.T) {
		f, _, issued := park(t, 0)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.agent.Sleep = func(ctx context.Context, d time.Duration) error {
			if f.pair().cert.Equal(issued) || len(f.sleeps) > 200 {
				cancel()
				return ctx.Err()
			}
			f.sleeps = append(f.sleeps, d)
			f.clock.Advance(d)
			return nil
		}
		start := f.clock.Now()
		if err := f.agent.Run(ctx); err != nil {
			t.Fatal(err)
		}
		// It wakes to ask about revocation again (the rechecks), at
		// the periodic checks (check_interval) and at the start, not
		// later.
		woke, at := false, start
		for _, d := range f.sleeps {
			at = at.Add(d)
			woke = woke || at.Equal(issued.NotBefore)
		}
		if !woke || !at.Equal(issued.NotBefore) {
			t.Errorf("slept %v from %s; want the last wake at its start, %s", f.sleeps, start, issued.NotBefore)
		}
		if !f.pair().cert.Equal(issued) || f.postRuns() != 1 {
			t.Errorf("installed %v, post_renew ran %d times; want installed once", f.pair().cert.Equal(issued), f.postRuns())
		}
	})

	// The server revokes the superseded certificate as it issues the
	// renewal but publishes the CRL (or the OCSP answer) a moment later:
	// the long-running agent asks again within minutes, not at the
	// renewal's start hours later.
	t.Run("the long-running agent learns a revocation published late", func(t *testing.T) {
		f, s, issued := park(t, 0)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.agent.Sleep = func(ctx context.Context, d time.Duration) error {
			if len(f.sleeps) == 0 {
				s.revoke(f.first) // published while the agent sleeps
			}
			if f.pair().cert.Equal(issued) || len(f.sleeps) > 200 {
				cancel()
				return ctx.Err()
			}
			f.sleeps = append(f.sleeps, d)
			f.clock.Advance(d)
			return nil
		}
		if err := f.agent.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if len(f.sleeps) != 1 || f.sleeps[0] > 5*time.Minute || !f.pair().cert.Equal(issued) {
			t.Errorf("slept %v, installed %v; want it installed after one sleep of minutes, not at the renewal's start", f.sleeps, f.pair().cert.Equal(issued))
		}
	})

	// Published later than the first recheck, the revocation is still
	// learned at the next one, minutes later, not at the nextUpdate an
	// hour later of the answers before it.
	t.Run("a revocation published 3 minutes after the renewal", func(t *testing.T) {
		f, s, issued := park(t, 0)
		parkedAt := f.clock.Now()
		published := parkedAt.Add(3 * time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.agent.Sleep = func(ctx context.Context, d time.Duration) error {
			if f.pair().cert.Equal(issued) || len(f.sleeps) > 200 {
				cancel()
				return ctx.Err()
			}
			if at := f.clock.Now(); at.Before(published) && !at.Add(d).Before(published) {
				s.revoke(f.first)
			}
			f.sleeps = append(f.sleeps, d)
			f.clock.Advance(d)
			return nil
		}
		if err := f.agent.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if !f.pair().cert.Equal(issued) {
			t.Fatal("the parked renewal was not installed")
		}
		took := f.clock.Now().Sub(parkedAt)
		if took > 10*time.Minute || len(s.askedAt) != 3 {
			t.Errorf("installed %s after the renewal, after %d questions (%v); want at the recheck after the publication, the second, within 10 minutes",
				took, len(s.askedAt), s.askedAt)
		}
	})

	t.Run("revoked meanwhile", func(t *testing.T) {
		f, s, issued := park(t, 0)
		s.revoke(f.first)
		f.clock.Advance(time.Hour)
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !f.pair().cert.Equal(issued) || f.postRuns() != 1 {
			t.Errorf("installed %v, post_renew ran %d times; want the parked one installed", f.pair().cert.Equal(issued), f.postRuns())
		}
	})

	t.Run("the old one expires first", func(t *testing.T) {
		// Renewed an hour before its end (two thirds of three hours), the
		// old certificate expires before the new one starts.
		f, _, issued := park(t, 3*time.Hour)
		f.clock.Set(f.first.NotAfter.Add(-time.Second))
		if err := f.agent.RunOnce(context.Background()); err != nil || !f.pair().cert.Equal(f.first) {
			t.Fatalf("a second before the old one's end: %v, the old one replaced: %v", err, !f.pair().cert.Equal(f.first))
		}
		f.clock.Set(f.first.NotAfter)
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !f.pair().cert.Equal(issued) {
			t.Error("the parked certificate was not installed when the old one expired")
		}
	})

	t.Run("an agent started afresh picks it up", func(t *testing.T) {
		f, s, issued := park(t, 0)
		fresh := &Agent{Config: f.cfg, Clock: f.clock, Log: f.agent.Log}
		f.clock.Set(issued.NotBefore)
		if err := fresh.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !f.pair().cert.Equal(issued) || len(s.issued) != 1 || f.postRuns() != 1 {
			t.Errorf("installed %v, %d renewals, post_renew %d; want the parked one installed without asking again", f.pair().cert.Equal(issued), len(s.issued), f.postRuns())
		}
	})

	t.Run("one that no longer matches is discarded", func(t *testing.T) {
		f, _, issued := park(t, 0)
		// Renewed since by other means: a certificate starting after the
		// parked one is in place.
		key := f.pair().key
		newer := f.ca.issue(t, key.Public(), f.first.Subject, f.first.DNSNames, issued.NotBefore.Add(time.Minute), 30*24*time.Hour)
		writePEM(t, filepath.Join(f.dir, "cert.pem"), 0o644, nil, newer)
		f.clock.Set(issued.NotBefore.Add(time.Hour))
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !f.pair().cert.Equal(newer) || f.postRuns() != 0 {
			t.Errorf("the parked certificate replaced a newer one (post_renew ran %d times)", f.postRuns())
		}
		if _, err := os.Lstat(f.parkedPath()); !os.IsNotExist(err) {
			t.Errorf("%s was kept: %v", parkedPEM, err)
		}
	})

	t.Run("a link in its place is not followed", func(t *testing.T) {
		f, _, issued := park(t, 0)
		elsewhere := filepath.Join(t.TempDir(), "parked.pem")
		b, err := os.ReadFile(f.parkedPath())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(elsewhere, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(f.parkedPath()); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(elsewhere, f.parkedPath()); err != nil {
			t.Fatal(err)
		}
		f.clock.Set(issued.NotBefore)
		if err := f.agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if f.pair().cert.Equal(issued) {
			t.Error("a parked pair reached through a link was installed")
		}
		if !strings.Contains(f.logs.String(), "not a regular file") {
			t.Error("the link was not named in a warning")
		}
	})
}

// A renewal parked for six hours (a server whose clock is that far
// ahead, for every device of a fleet) does not have the long-running
// agent ask every two minutes whether the certificate in place is
// revoked: the rechecks back off to parkedRecheckMax, none comes before
// the nextUpdate of the last answer (after the first few), and none at or
// after the parked certificate's start, when it is installed. The
// questions are counted at the responder.
func TestParkedRechecksAreBounded(t *testing.T) {
	const ahead = 6*time.Hour + 10*time.Minute
	for _, tt := range []struct {
		name       string
		crl        bool          // a CRL, no OCSP URL
		nextUpdate time.Duration // see clockServer.nextUpdate
		max        int           // questions, the one at the renewal included
		minGap     time.Duration // between questions after the early ones
	}{
		{"OCSP answers without nextUpdate: the backoff alone", false, -1, 14, recheckDelay(parkedEarlyRechecks+1, 0)},
		{"a CRL whose nextUpdate is an hour away", true, time.Hour, 10, time.Hour},
		{"answers whose nextUpdate is after the start", false, 0, 1 + parkedEarlyRechecks, ahead},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			s := newClockServer(t, f, ahead, false)
			s.nextUpdate = tt.nextUpdate
			if tt.crl {
				f.ca.ocspURL, f.ca.crlURL = "", s.url+"/crl"
				f.first = f.ca.issue(t, f.pair().key.Public(), f.first.Subject, f.first.DNSNames, epoch, 30*24*time.Hour)
				writePEM(t, filepath.Join(f.dir, "cert.pem"), 0o644, nil, f.first)
			}
			f.clock.Set(RenewalPoint(f.first, 0))
			parkedAt := f.clock.Now()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f.agent.Sleep = func(ctx context.Context, d time.Duration) error {
				if issued := s.lastIssued(); issued != nil && f.pair().cert.Equal(issued) || len(f.sleeps) > 1000 {
					cancel()
					return ctx.Err()
				}
				f.sleeps = append(f.sleeps, d)
				f.clock.Advance(d)
				return nil
			}
			if err := f.agent.Run(ctx); err != nil {
				t.Fatal(err)
			}
			issued := s.lastIssued()
			if issued == nil || !f.pair().cert.Equal(issued) || !f.clock.Now().Equal(issued.NotBefore) {
				t.Fatalf("want the renewal parked, then installed at its start %s; now %s", issued.NotBefore, f.clock.Now())
			}
			var offsets []time.Duration
			for _, at := range s.askedAt {
				offsets = append(offsets, at.Sub(parkedAt))
				if !at.Before(issued.NotBefore) {
					t.Errorf("asked at %s, at or after the parked start %s", at, issued.NotBefore)
				}
			}
			if len(s.askedAt) > tt.max || len(s.askedAt) < 1+parkedEarlyRechecks {
				t.Errorf("asked %d times in %s parked (at %v); want from %d to %d", len(s.askedAt), ahead, offsets, 1+parkedEarlyRechecks, tt.max)
			}
			for i := 1 + parkedEarlyRechecks; i < len(offsets); i++ {
				if gap := offsets[i] - offsets[i-1]; gap < min(tt.minGap, issued.NotBefore.Sub(s.askedAt[i-1])) {
					t.Errorf("asked %s after the question before (at %v); want at least %s", gap, offsets, tt.minGap)
				}
			}
			if len(offsets) > 1 && offsets[1] > 5*time.Minute {
				t.Errorf("the first recheck came %s after the renewal (at %v); want it within minutes", offsets[1], offsets)
			}
		})
	}
}

// The rechecks' waits double from parkedRecheckFirst to parkedRecheckMax,
// lengthened by up to half by the jitter.
func TestRecheckDelay(t *testing.T) {
	for _, tt := range []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		{1, 0, 2 * time.Minute},
		{2, 0, 4 * time.Minute},
		{3, 0, 8 * time.Minute},
		{4, 0, 16 * time.Minute},
		{5, 0, 30 * time.Minute},
		{50, 0, 30 * time.Minute},
		{1, 0.5, 2*time.Minute + 30*time.Second},
		{5, 0.999, 30*time.Minute + time.Duration(0.999*float64(15*time.Minute))},
		{1, 1, 2 * time.Minute}, // out of range: none
	} {
		if got := recheckDelay(tt.n, tt.jitter); got != tt.want {
			t.Errorf("recheckDelay(%d, %v) = %s, want %s", tt.n, tt.jitter, got, tt.want)
		}
	}
}

// rollover gives the fixture's CA a new issuing CA under the same root,
// as `scepter ca rollover` does: renewals come from it, and /cacerts no
// longer carries the previous one, which it returns.
func rollover(t *testing.T, f *fixture, s *clockServer) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	old, oldKey := f.ca.inter, f.ca.interKey
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "Agent Test Issuing CA 2"},
		NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(10 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca.cert, key.Public(), f.ca.key)
	if err != nil {
		t.Fatal(err)
	}
	f.ca.inter, _ = x509.ParseCertificate(der)
	f.ca.interKey = key
	s.addSigner(f.ca.inter, key)
	return old, oldKey
}

// Whether the certificate in place is revoked decides whether a renewal
// that starts after this clock is installed at once. Its issuer is found
// after a CA rollover too (in chain_path, or at its caIssuers URL), but
// believed only when it chains to the pinned CA; without an OCSP URL the
// CRL is asked; with neither, the agent says that it cannot know, and
// promises no install on a revocation.
func TestRevocationOfTheCertificateInPlace(t *testing.T) {
	for _, tt := range []struct {
		name      string
		rollover  bool
		chainFile string // "old": the previous issuing CA; "rogue": one with its name and key under another root
		caIssuers bool   // the certificate in place names the previous issuing CA's URL
		noOCSP    bool
		crl       bool
		rogueCRL  bool // the CRL is signed by another CA of the issuer's name
		installed bool
		log       string
		notLog    string
	}{
		{name: "after a rollover, the previous issuer in chain_path", rollover: true, chainFile: "old", installed: true,
			log: "installing it now: the certificate in place is revoked (OCSP)"},
		{name: "after a rollover, the previous issuer at its caIssuers URL", rollover: true, caIssuers: true, installed: true,
			log: "installing it now: the certificate in place is revoked (OCSP)"},
		{name: "an issuer in chain_path under another root is not believed", rollover: true, chainFile: "rogue",
			log: "is not among the CA certificates that chain to the pinned CA"},
		{name: "no OCSP URL: the CRL says revoked", noOCSP: true, crl: true, installed: true,
			log: "installing it now: the certificate in place is revoked (CRL)"},
		{name: "after a rollover, no OCSP URL: the CRL, checked by the issuer in chain_path", rollover: true, chainFile: "old", noOCSP: true, crl: true, installed: true,
			log: "installing it now: the certificate in place is revoked (CRL)"},
		// Not "revoked", nor "not revoked": a CRL that is not the
		// issuer's says nothing either way.
		{name: "no OCSP URL: a CRL in the issuer's name signed by another key is not believed", noOCSP: true, crl: true, rogueCRL: true,
			log: "could not learn from OCSP or the CRL whether the certificate in place is revoked", notLog: "installing it now"},
		{name: "neither OCSP nor CRL: said, and nothing promised", noOCSP: true,
			log: "whether the certificate in place is revoked cannot be learned", notLog: "expires or is revoked"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if tt.chainFile != "" {
				extra = "chain_path = \"chain.pem\"\n"
			}
			f := newFixture(t, fixtureOpts{intermediate: true, extra: extra})
			s := newClockServer(t, f, time.Hour, true)
			if tt.noOCSP {
				f.ca.ocspURL = ""
			}
			if tt.crl {
				f.ca.crlURL = s.url + "/crl"
			}
			if tt.rogueCRL {
				s.crlSigner = rogueIssuer(t, f.ca.inter)
			}
			if tt.caIssuers {
				inter := f.ca.inter
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(inter.Raw) }))
				t.Cleanup(srv.Close)
				f.ca.issuerURL = srv.URL + "/ca.crt"
			}
			f.first = f.ca.issue(t, f.pair().key.Public(), f.first.Subject, f.first.DNSNames, epoch, 30*24*time.Hour)
			writePEM(t, filepath.Join(f.dir, "cert.pem"), 0o644, nil, f.first)
			if tt.chainFile == "rogue" {
				// The agent's own pair (moved into its generations when
				// it came from the CA), so that the forged chain_path
				// meets the revocation check, not the check of a pair it
				// does not know.
				l := newLayout(f.cert(), nil)
				if err := l.stateDir(); err != nil {
					t.Fatal(err)
				}
				if err := l.migrate(); err != nil {
					t.Fatal(err)
				}
			}
			f.ca.ocspURL, f.ca.crlURL, f.ca.issuerURL = "", "", ""
			old := f.ca.inter
			if tt.rollover {
				old, _ = rollover(t, f, s)
			}
			switch tt.chainFile {
			case "old":
				writePEM(t, filepath.Join(f.dir, "chain.pem"), 0o644, nil, old, f.ca.cert)
			case "rogue":
				rogue := newTestCA(t, epoch, false)
				tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: old.Subject, NotBefore: old.NotBefore, NotAfter: old.NotAfter,
					IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, rogue.cert, old.PublicKey, rogue.key)
				if err != nil {
					t.Fatal(err)
				}
				forged, _ := x509.ParseCertificate(der)
				writePEM(t, filepath.Join(f.dir, "chain.pem"), 0o644, nil, forged, rogue.cert)
			}
			f.clock.Set(RenewalPoint(f.first, 0))
			if err := f.agent.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			issued := s.lastIssued()
			if issued == nil {
				t.Fatal("nothing was renewed")
			}
			if !strings.Contains(f.logs.String(), tt.log) {
				t.Errorf("the log does not say %q", tt.log)
			}
			if tt.notLog != "" && strings.Contains(f.logs.String(), tt.notLog) {
				t.Errorf("the log says %q", tt.notLog)
			}
			if got := f.pair().cert.Equal(issued); got != tt.installed {
				t.Errorf("the renewal installed at once: %v, want %v", got, tt.installed)
			}
			if _, err := os.Lstat(f.parkedPath()); os.IsNotExist(err) == !tt.installed {
				t.Errorf("parked (%s): %v, want %v", parkedPEM, err == nil, !tt.installed)
			}
		})
	}
}

// rogueIssuer is a CA with issuer's name and a key of its own, under a
// root of its own.
func rogueIssuer(t *testing.T, issuer *x509.Certificate) *signer {
	t.Helper()
	rogue := newTestCA(t, epoch, false)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: issuer.Subject, NotBefore: issuer.NotBefore, NotAfter: issuer.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, rogue.cert, key.Public(), rogue.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &signer{cert, key}
}

// A CRL in the name of the certificate's issuer but signed by another key
// is refused, whether it lists the certificate or not: the answer is an
// error ("cannot be learned"), never "revoked" nor "not revoked".
func TestCRLSignedByAnotherKeyIsRefused(t *testing.T) {
	ca := newTestCA(t, epoch, true)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert := ca.issue(t, key.Public(), pkix.Name{CommonName: "device"}, nil, epoch, time.Hour)
	rogue := rogueIssuer(t, ca.inter)
	for _, tt := range []struct {
		name   string
		listed bool
	}{
		{"it lists the certificate", true},
		{"it does not list the certificate", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: epoch, NextUpdate: epoch.Add(time.Hour)}
			if tt.listed {
				tmpl.RevokedCertificateEntries = []x509.RevocationListEntry{{SerialNumber: cert.SerialNumber, RevocationTime: epoch}}
			}
			der, err := x509.CreateRevocationList(rand.Reader, tmpl, rogue.cert, rogue.key)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(der) }))
			defer srv.Close()
			revoked, _, err := inCRL(context.Background(), srv.Client(), srv.URL, cert, ca.inter)
			if err == nil || revoked || !strings.Contains(err.Error(), "not signed by") {
				t.Errorf("revoked %v, err %v; want an error saying the CRL is not signed by the issuer", revoked, err)
			}
		})
	}
}

// `scepter agent status` says that a parked renewal waits for its start,
// not that the renewal is due.
func TestStatusShowsAParkedRenewal(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newClockServer(t, f, 2*time.Hour+10*time.Minute, false)
	f.clock.Set(RenewalPoint(f.first, 0))
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	issued := s.lastIssued()
	if issued == nil || f.pair().cert.Equal(issued) {
		t.Fatal("want a renewal parked")
	}
	var out strings.Builder
	if err := WriteStatus(&out, f.agent.Status(), f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	want := "next renewal:  renewed; the new certificate waits for its start at " + issued.NotBefore.UTC().Format("2006-01-02 15:04:05Z") + " (in 2h10m) (" + f.parkedPath() + ")"
	if !strings.Contains(out.String(), want) || strings.Contains(out.String(), "due now") {
		t.Errorf("status:\n%s\nwant %q", out.String(), want)
	}
	if _, err := os.Lstat(f.parkedPath()); err != nil {
		t.Errorf("status changed the parked renewal: %v", err)
	}
}

// A CRL or OCSP URL over https, served under a TLS certificate of the CA
// itself (as a scepter server with an https public URL does), is fetched:
// the client trusts the CA certificates that chain to the pinned CA as
// well as the system roots.
func TestRevocationClientTrustsTheCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("crl"))
	}))
	defer srv.Close()
	ctx := context.Background()
	if b, err := fetchBounded(ctx, revocationClient([]*x509.Certificate{srv.Certificate()}), http.MethodGet, srv.URL, nil, "", 16); err != nil || string(b) != "crl" {
		t.Errorf("with the CA trusted: %q, %v", b, err)
	}
	if _, err := fetchBounded(ctx, revocationClient(nil), http.MethodGet, srv.URL, nil, "", 16); err == nil {
		t.Error("a server of an unknown CA was trusted")
	}
}
