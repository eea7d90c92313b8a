package ca

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pkitest"
)

// The CA's own CA certificates chain to the root but were issued to no
// client: IssuedByUs refuses them as not ours (ErrNotOurs), naming which
// (CACertError), expired or not (r109 observation 6).
func TestIssuedByUsNamesOwnCACertificates(t *testing.T) {
	clock := pkitest.NewClock(t0)
	_, a := newCA(t, InitOptions{}, clock)
	issuing, root := a.Issuer.Cert, a.Issuer.Chain[len(a.Issuer.Chain)-1]
	for _, tc := range []struct {
		name, role string
		at         time.Time
		isRoot     bool
	}{
		{"issuing CA", "issuing CA certificate", t0, false},
		{"issuing CA, expired", "issuing CA certificate", issuing.NotAfter.Add(time.Hour), false},
		{"root", "root certificate", t0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := issuing
			if tc.isRoot {
				cert = root
			}
			iss, err := a.IssuedByUs(cert, tc.at)
			var caCert *CACertError
			if iss != nil || !errors.Is(err, ErrNotOurs) || !errors.As(err, &caCert) {
				t.Fatalf("IssuedByUs = %v, %v; want a CACertError, ErrNotOurs", iss, err)
			}
			if caCert.Role != tc.role || caCert.Subject != cert.Subject.String() || !strings.Contains(err.Error(), tc.role) {
				t.Errorf("role %q, subject %q (%v); want %q, %q", caCert.Role, caCert.Subject, err, tc.role, cert.Subject)
			}
		})
	}
}
