package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

// approvalProfile is the profile at which ownKeyFixture's requests are
// held for approval.
const approvalProfile = "approval"

// ownKeyFixture is a PKI with an approval profile beside "default": a
// request for one of the server's own keys is refused at both, as its
// approval would be, rather than held.
func ownKeyFixture(t *testing.T) *fixture.PKI {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = approvalProfile, true
	return fixture.New(t, fixture.Options{Config: enroll.Config{DefaultProfile: "default",
		Profiles: map[string]pki.Profile{"default": pki.DefaultProfile(), approvalProfile: approval}}})
}

// ownKeyProfiles are the profiles a request for one of the server's own
// keys is tried at: the default one, which issues, and one that holds
// requests for approval.
var ownKeyProfiles = []string{"", approvalProfile}

// challengeFor is a challenge good at profile: the fixture's static one at
// the default profile, a new one-time one at the approval profile.
func challengeFor(t *testing.T, p *fixture.PKI, profile string) string {
	t.Helper()
	if profile == "" {
		return fixture.Challenge
	}
	profiles, def := p.Service.Profiles()
	secret, _, err := admin.New(p.Store, p.Clock, p.Log, profiles, def).NewChallenge(context.Background(), time.Hour, profile, "tester")
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// noneHeld fails t if any request is held for approval.
func noneHeld(t *testing.T, p *fixture.PKI) {
	t.Helper()
	held, _, err := p.Store.ListRequests(context.Background(), store.RequestFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range held {
		t.Errorf("request %s (%s, %s) held for approval", r.ID, r.Subject, r.Protocol)
	}
}

// An RA that 'ca renew-ra' or 'ca rollover' makes beside a running server
// is in the inventory at once, but in the server's memory only once it
// reloads its CA (every --ca-reload-interval). A request for the new RA's
// key in that window, by anyone who could read the data directory, is
// refused as the in-memory check refuses it (badRequest naming the SCEP
// RA's key), over each protocol and at a profile that holds requests for
// approval too, and nothing is recorded or held for it.
func TestNewRAKeyIsRefusedBeforeTheServerReloads(t *testing.T) {
	tests := []struct {
		name string
		// makeRA runs the command's code against the running server's
		// data directory and store, and returns the RA it made.
		makeRA func(t *testing.T, p *fixture.PKI) *pki.RA
	}{
		{"ca renew-ra", func(t *testing.T, p *fixture.PKI) *pki.RA {
			// Three years: later than the first RA's end.
			_, renewed, err := renewRA(context.Background(), p.Store, p.Dir, ca.RenewRAOptions{Validity: 3 * 365 * raTestDay, GenerateKey: testKeys.Generate}, p.Clock, "host-a tester", nil)
			if err != nil {
				t.Fatalf("renewRA: %v", err)
			}
			return renewed
		}},
		{"ca rollover", func(t *testing.T, p *fixture.PKI) *pki.RA {
			ctx := context.Background()
			_, ra, err := cashare.Rollover(ctx, p.Store, p.Dir, ca.RolloverOptions{SwitchAt: p.Clock.Now().Add(72 * time.Hour),
				ReserveRA: raSerialReserve(p.Store, p.Clock), GenerateKey: testKeys.Generate}, p.Clock, "host-a tester")
			if err != nil {
				t.Fatalf("rollover: %v", err)
			}
			a, _, err := loadCLICA(ctx, p.Store, p.Dir, nil, p.Clock)
			if err != nil {
				t.Fatal(err)
			}
			if err := recordRAs(ctx, p.Store, a, p.Clock); err != nil {
				t.Fatalf("recording the next RA: %v", err)
			}
			return ra
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := ownKeyFixture(t)
			ra := tc.makeRA(t, p)
			if ra == nil || ra.IsCA {
				t.Fatalf("no separate RA made: %+v", ra)
			}
			if recs, err := p.Store.CertificatesBySerial(ctx, ra.Cert.SerialNumber.Text(16)); err != nil || len(recs) != 1 || recs[0].Profile != enroll.RAProfileName {
				t.Fatalf("the new RA in the inventory: %+v, %v; want it recorded under %s", recs, err, enroll.RAProfileName)
			}
			if _, known := p.Authority.OwnKeyRole(ra.Cert.PublicKey); known {
				t.Fatal("the running server knows the new RA already: no window to test")
			}
			for _, profile := range ownKeyProfiles {
				for _, protocol := range []pki.Protocol{pki.ProtocolSCEP, pki.ProtocolEST, pki.ProtocolCLI} {
					req := p.Request(t, "new-ra-key")
					der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "new-ra-key"}}, ra.Key)
					if err != nil {
						t.Fatal(err)
					}
					if req.CSR, err = x509.ParseCertificateRequest(der); err != nil {
						t.Fatal(err)
					}
					req.Protocol, req.TransactionID, req.Profile = protocol, "new-ra-key-"+string(protocol)+"-"+profile, profile
					req.Evidence.Challenge = challengeFor(t, p, profile)
					_, err = p.Service.Enroll(ctx, req.Request)
					if msg := pki.ErrorMessage(err); pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(msg, "the SCEP RA's key ("+ra.Cert.Subject.String()+")") ||
						!strings.Contains(msg, "never certifies its own keys") {
						t.Errorf("%s at profile %q: enrolling the new RA's key: %v; want badRequest naming the SCEP RA's key", protocol, profile, err)
					}
				}
			}
			noneHeld(t, p)
			certs, _, err := p.Store.ListCertificates(ctx, store.CertFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range certs {
				if c.Subject == "CN=new-ra-key" {
					t.Errorf("certificate %s (%s) issued for the new RA's key", c.SerialHex, c.Protocol)
				}
			}
			// A key of the device's own is issued as before.
			p.Issue(t, "device")
		})
	}
}

// The next issuing CA that 'ca rollover' makes beside a running server is
// recorded in the store at once (ca_generations, not the inventory), but
// in the server's memory only once it reloads its CA. A request for the
// next CA's key (DATA/ca/next/issuing.key) in that window is refused as
// the in-memory check refuses it (badRequest naming the issuing CA), over
// each protocol and at a profile that holds requests for approval too, and
// nothing is recorded or held for it.
func TestNextCAKeyIsRefusedBeforeTheServerReloads(t *testing.T) {
	ctx := context.Background()
	p := ownKeyFixture(t)
	// The running server has recorded its CA in the store, as 'serve'
	// does at start: 'ca rollover' then records the next one at once.
	sync := &cashare.Syncer{Store: p.Store, Authority: p.Authority, Clock: p.Clock, Node: "node-a", Log: p.Log}
	if err := sync.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// What 'ca rollover' runs.
	next, _, err := cashare.Rollover(ctx, p.Store, p.Dir, ca.RolloverOptions{SwitchAt: p.Clock.Now().Add(72 * time.Hour),
		ReserveRA: raSerialReserve(p.Store, p.Clock), GenerateKey: testKeys.Generate}, p.Clock, "host-a tester")
	if err != nil {
		t.Fatalf("rollover: %v", err)
	}
	a, _, err := loadCLICA(ctx, p.Store, p.Dir, nil, p.Clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := recordRAs(ctx, p.Store, a, p.Clock); err != nil {
		t.Fatalf("recording the next RA: %v", err)
	}
	gens, err := p.Store.CAGenerations(ctx)
	if err != nil || !slices.ContainsFunc(gens, func(g store.CAGeneration) bool { return g.IssuerID == next.ID }) {
		t.Fatalf("the next CA %s in the store: %+v, %v; want it recorded", next.ID, gens, err)
	}
	if _, known := p.Authority.OwnKeyRole(next.Cert.PublicKey); known {
		t.Fatal("the running server knows the next CA already: no window to test")
	}
	wantRole := "the key of the issuing CA " + next.Cert.Subject.String()
	for _, profile := range ownKeyProfiles {
		for _, protocol := range []pki.Protocol{pki.ProtocolSCEP, pki.ProtocolEST, pki.ProtocolCLI} {
			req := p.Request(t, "next-ca-key")
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "next-ca-key"}}, next.Signer)
			if err != nil {
				t.Fatal(err)
			}
			if req.CSR, err = x509.ParseCertificateRequest(der); err != nil {
				t.Fatal(err)
			}
			req.Protocol, req.TransactionID, req.Profile = protocol, "next-ca-key-"+string(protocol)+"-"+profile, profile
			req.Evidence.Challenge = challengeFor(t, p, profile)
			_, err = p.Service.Enroll(ctx, req.Request)
			if msg := pki.ErrorMessage(err); pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(msg, "the request's public key is "+wantRole+":") ||
				!strings.Contains(msg, "never certifies its own keys") {
				t.Errorf("%s at profile %q: enrolling the next CA's key: %v; want badRequest naming %q", protocol, profile, err, wantRole)
			}
		}
	}
	noneHeld(t, p)
	certs, _, err := p.Store.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if c.Subject == "CN=next-ca-key" {
			t.Errorf("certificate %s (%s) issued for the next CA's key", c.SerialHex, c.Protocol)
		}
	}
	// A key of the device's own is issued as before.
	p.Issue(t, "device")
}
