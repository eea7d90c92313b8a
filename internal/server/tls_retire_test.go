package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
)

// retireFails is the enrollment service with a store that cannot record
// the retirement of a replaced certificate.
type retireFails struct {
	*enroll.Service
	asked chan *x509.Certificate // the old certificate of each retirement asked
}

func (r retireFails) RetireServerCertificate(_ context.Context, old, _ *x509.Certificate, _ *pki.KeyDestruction, _ string) (bool, error) {
	r.asked <- old
	return false, errors.New("database is locked")
}

// A replacement stands whatever its old certificate's retirement meets:
// the new pair is on disk and served, and the failure is logged with the
// command that revokes the old one.
func TestReplacedHTTPSCertificateStandsWhenItsRetirementFails(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	tlsDir := filepath.Join(p.Dir, "tls")
	first, _, err := server.ManagedCertificate(ctx, tlsDir, []string{"127.0.0.1"}, p.Service, "system:node1", p.Clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	issuer := retireFails{Service: p.Service, asked: make(chan *x509.Certificate, 1)}
	c, issued, err := server.ManagedCertificate(ctx, tlsDir, []string{"127.0.0.1", "ca.example"}, issuer, "system:node1", p.Clock,
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || !issued {
		t.Fatalf("replacement: issued %v, %v; want it to stand", issued, err)
	}
	select { // asked before ManagedCertificate returned
	case old := <-issuer.asked:
		if !old.Equal(first.Leaf()) {
			t.Errorf("retirement asked for %s, want the replaced %s", old.SerialNumber.Text(16), first.Leaf().SerialNumber.Text(16))
		}
	default:
		t.Error("the replaced certificate's retirement was not asked for")
	}
	onDisk, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, server.ServerCertFile), filepath.Join(tlsDir, server.ServerKeyFile))
	if err != nil || !onDisk.Leaf.Equal(c.Leaf()) || c.Leaf().Equal(first.Leaf()) {
		t.Fatalf("the new pair is not the one on disk and served: %v", err)
	}
	serial := pki.SerialText(first.Leaf().SerialNumber)
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "scepter certs revoke "+serial+" --reason superseded") ||
		!strings.Contains(out, "database is locked") {
		t.Errorf("log %q, want an ERROR with the failure and the command that revokes %s", out, serial)
	}
}

// A first start, and a start whose key file holds no key (its certificate
// gone), have nothing to revoke; only a key file that was there is a
// destroyed key.
func TestManagedCertificateRetiresOnlyWhatWasThere(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	tlsDir := filepath.Join(p.Dir, "tls")
	issuer := recordingIssuer{Service: p.Service, asked: make(chan retirement, 2)}
	if _, _, err := server.ManagedCertificate(ctx, tlsDir, []string{"127.0.0.1"}, issuer, "", p.Clock, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-issuer.asked:
		t.Errorf("a first start retired %+v", r)
	default:
	}
	// The certificate file gone, the key still there: the key is
	// destroyed by the replacement, and no certificate is revoked.
	key, err := keys.LoadKeyFile(filepath.Join(tlsDir, server.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(tlsDir, server.ServerCertFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.ManagedCertificate(ctx, tlsDir, []string{"127.0.0.1"}, issuer, "", p.Clock, nil); err != nil {
		t.Fatal(err)
	}
	var r retirement
	select { // asked before ManagedCertificate returned
	case r = <-issuer.asked:
	default:
		t.Fatal("the overwritten key's destruction was not recorded")
	}
	if r.old != nil || r.key == nil || r.key.Role != pki.KeyRoleHTTPSServer || !pki.SamePublicKey(r.key.Public, key.Public()) || r.actor != "system" {
		t.Errorf("retired %+v, want no certificate and the key that was on disk, by system", r)
	}
}

type retirement struct {
	old   *x509.Certificate
	key   *pki.KeyDestruction
	actor string
}

// recordingIssuer is the enrollment service that reports each retirement.
type recordingIssuer struct {
	*enroll.Service
	asked chan retirement
}

func (r recordingIssuer) RetireServerCertificate(ctx context.Context, old, next *x509.Certificate, key *pki.KeyDestruction, actor string) (bool, error) {
	r.asked <- retirement{old, key, actor}
	return r.Service.RetireServerCertificate(ctx, old, next, key, actor)
}

// countingIssuer counts the HTTPS certificates it is asked to issue.
type countingIssuer struct {
	*enroll.Service
	issued *int
}

func (c countingIssuer) IssueServerCertificate(ctx context.Context, key crypto.PublicKey, names []string) (*x509.Certificate, []*x509.Certificate, error) {
	*c.issued++
	return c.Service.IssueServerCertificate(ctx, key, names)
}

// A directory where the new key cannot be kept stops a replacement before
// a certificate is issued (r80: each try, once a minute, left a valid
// certificate for a key thrown away); the pair in use stays, on disk and
// served, and once the directory can be written the replacement goes on.
func TestHTTPSKeyKeptBeforeItsCertificateIsIssued(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	tlsDir := filepath.Join(p.Dir, "tls")
	first, _, err := server.ManagedCertificate(ctx, tlsDir, []string{"127.0.0.1"}, p.Service, "system:node1", p.Clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Stands for a full disk or a read-only mount, which root's tests
	// cannot make with modes: the new key's file cannot be written.
	inTheWay := filepath.Join(tlsDir, "."+server.ServerKeyFile+".new")
	if err := os.MkdirAll(filepath.Join(inTheWay, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	var issued int
	issuer := countingIssuer{Service: p.Service, issued: &issued}
	for range 3 {
		if _, _, err := server.ManagedCertificate(ctx, tlsDir, []string{"127.0.0.1", "ca.example"}, issuer, "system:node1", p.Clock, nil); err == nil ||
			!strings.Contains(err.Error(), "no certificate was issued for it") {
			t.Fatalf("a replacement whose key cannot be kept: %v", err)
		}
	}
	if issued != 0 {
		t.Errorf("%d certificates issued for keys that could not be kept", issued)
	}
	onDisk, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, server.ServerCertFile), filepath.Join(tlsDir, server.ServerKeyFile))
	if err != nil || !onDisk.Leaf.Equal(first.Leaf()) {
		t.Fatalf("the pair in use is not the one on disk: %v", err)
	}
	if err := os.RemoveAll(inTheWay); err != nil {
		t.Fatal(err)
	}
	c, replaced, err := server.ManagedCertificate(ctx, tlsDir, []string{"127.0.0.1", "ca.example"}, issuer, "system:node1", p.Clock, nil)
	if err != nil || !replaced || issued != 1 || c.Leaf().Equal(first.Leaf()) {
		t.Fatalf("once the directory can be written: replaced %v, %d issued, %v", replaced, issued, err)
	}
	if left, _ := filepath.Glob(filepath.Join(tlsDir, ".*.new")); len(left) > 0 {
		t.Errorf("left in the directory: %v", left)
	}
}
