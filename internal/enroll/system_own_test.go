package enroll_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	pkifixture "github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// lookedTooEarly is a store whose lookups all come before another node's
// record: every certificate is missing, so the record itself meets the
// other node's (ErrConflict), as two nodes sharing a PostgreSQL store
// that record the same certificate at once do.
type lookedTooEarly struct{ store.Store }

func (lookedTooEarly) Certificate(context.Context, string, string) (*pki.Certificate, error) {
	return nil, store.ErrNotFound
}

// A responder or HTTPS certificate the inventory lacks (one issued while
// another store was in use: a store restored since) is recorded once,
// under its profile and protocol internal, with one certificate.issued
// event; two nodes recording it at once neither fail nor record it twice.
func TestRecordOwnCertificateTheInventoryLacks(t *testing.T) {
	for _, tc := range []struct {
		name, profile, detail string
		issue                 func(ctx context.Context, s *enroll.Service, issuerID string, key crypto.PublicKey) (*x509.Certificate, error)
		record                func(s *enroll.Service) func(context.Context, *x509.Certificate) error
	}{
		{"responder", "ocsp-responder", "OCSP responder certificate, recorded in the inventory",
			func(ctx context.Context, s *enroll.Service, issuerID string, key crypto.PublicKey) (*x509.Certificate, error) {
				return s.IssueResponderCertificate(ctx, issuerID, key, time.Hour)
			},
			func(s *enroll.Service) func(context.Context, *x509.Certificate) error {
				return s.RecordResponderCertificate
			}},
		{"HTTPS", "tls-server", "HTTPS certificate, recorded in the inventory",
			func(ctx context.Context, s *enroll.Service, _ string, key crypto.PublicKey) (*x509.Certificate, error) {
				c, _, err := s.IssueServerCertificate(ctx, key, []string{"127.0.0.1"})
				return c, err
			},
			func(s *enroll.Service) func(context.Context, *x509.Certificate) error {
				return s.RecordServerCertificate
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := pkifixture.New(t, pkifixture.Options{})
			// Issued through another store (the one the backup was taken
			// from), so that p.Store lacks it.
			other, err := enroll.New(sqlitetest.Open(t, filepath.Join(t.TempDir(), "other.db")), p.Authority, p.Clock, nil, enroll.Config{})
			if err != nil {
				t.Fatal(err)
			}
			key, err := keys.Generate(keys.P256)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := tc.issue(ctx, other, p.Issuer().ID, key.Public())
			if err != nil {
				t.Fatal(err)
			}
			serial := cert.SerialNumber.Text(16)
			if _, err := p.Store.Certificate(ctx, p.Issuer().ID, serial); err == nil {
				t.Fatal("the store holds the certificate before it is recorded")
			}
			late, err := enroll.New(lookedTooEarly{p.Store}, p.Authority, p.Clock, nil, enroll.Config{})
			if err != nil {
				t.Fatal(err)
			}
			for _, node := range []*enroll.Service{p.Service, late, p.Service} {
				if err := tc.record(node)(ctx, cert); err != nil {
					t.Fatalf("recording it: %v", err)
				}
			}
			rec, err := p.Store.Certificate(ctx, p.Issuer().ID, serial)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Profile != tc.profile || rec.Protocol != pki.ProtocolInternal || rec.Status != pki.StatusValid {
				t.Errorf("recorded as profile %s, protocol %s, %s; want %s, internal, valid", rec.Profile, rec.Protocol, rec.Status, tc.profile)
			}
			evs, err := p.Store.ListAudit(ctx, store.AuditFilter{SerialHex: serial})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Type != pki.EventIssued || evs[0].Detail != tc.detail {
				t.Errorf("audit events %+v, want one certificate.issued %q", evs, tc.detail)
			}
		})
	}
}

// A certificate none of our issuing CAs signed (a configured HTTPS pair
// of another CA) is not ours to record: nothing is written.
func TestRecordOwnCertificateNotOurs(t *testing.T) {
	ctx := context.Background()
	p := pkifixture.New(t, pkifixture.Options{})
	foreign := pkifixture.New(t, pkifixture.Options{})
	cert, _ := foreign.Issue(t, "elsewhere")
	if err := p.Service.RecordServerCertificate(ctx, cert); err != nil {
		t.Fatal(err)
	}
	if recs, err := p.Store.CertificatesBySerial(ctx, cert.SerialNumber.Text(16)); err != nil || len(recs) != 0 {
		t.Errorf("a foreign certificate: %d records (%v), want none", len(recs), err)
	}
}
