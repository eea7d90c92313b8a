package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
)

// After a CA switch the managed HTTPS certificate is replaced from the
// issuing CA in charge (r140 D1: it stayed with the first CA for up to 60
// days, and a client pinning the CA in charge could not connect). Each
// node replaces its own once its authority has the switch; one that has
// not yet reloaded keeps serving its own, without an error.
func TestManagedCertificateFollowsTheCASwitch(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	names := []string{"127.0.0.1"}
	first, _, err := server.ManagedCertificate(ctx, filepath.Join(p.Dir, "tls"), names, p.Service, "system:node1", p.Clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second node on the same CA and store, which reloads its CA later.
	a2, _, err := ca.LoadOrCreate(p.Dir, ca.InitOptions{}, p.Clock)
	if err != nil {
		t.Fatal(err)
	}
	svc2, err := enroll.New(p.Store, a2, p.Clock, p.Log, enroll.Config{StaticChallenge: fixture.Challenge})
	if err != nil {
		t.Fatal(err)
	}
	tls2 := filepath.Join(p.Dir, "tls2")
	second, _, err := server.ManagedCertificate(ctx, tls2, names, svc2, "system:node2", p.Clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldIssuer := p.Issuer()

	switchAt := p.Clock.Now().Add(time.Hour)
	next, nextRA, err := ca.Rollover(p.Dir, ca.RolloverOptions{SwitchAt: switchAt}, p.Clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Authority.SetNext(next, nextRA, switchAt); err != nil {
		t.Fatal(err)
	}
	// Before the switch: nothing is replaced.
	if err := first.RenewIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	before := first.Leaf()
	if before.CheckSignatureFrom(oldIssuer.Cert) != nil {
		t.Fatal("the HTTPS certificate changed issuer before the switch")
	}

	p.Clock.Advance(2 * time.Hour)
	// The node that has not reloaded: its certificate stays, no error.
	served2 := second.Leaf()
	if err := second.RenewIfDue(ctx); err != nil || !second.Leaf().Equal(served2) {
		t.Fatalf("a node without the switch: %v, replaced %v; want it to keep serving its certificate", err, !second.Leaf().Equal(served2))
	}
	// The node that has it: replaced from the CA in charge, once.
	if err := first.RenewIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	after := first.Leaf()
	if after.Equal(before) || after.CheckSignatureFrom(next.Cert) != nil {
		t.Fatalf("after the switch the HTTPS certificate is issued by %s, want %s", after.Issuer, next.Cert.Subject)
	}
	if err := first.RenewIfDue(ctx); err != nil || !first.Leaf().Equal(after) {
		t.Fatalf("a second look replaced it again (%v)", err)
	}
	// Retired as a renewal's: revoked as superseded.
	rec, err := p.Store.Certificate(ctx, oldIssuer.ID, before.SerialNumber.Text(16))
	if err != nil || rec.Status != pki.StatusRevoked || rec.RevokeReason != 4 {
		t.Errorf("the replaced certificate %s: %+v, %v; want it revoked as superseded", pki.SerialText(before.SerialNumber), rec, err)
	}
	// A client pinning the issuing CA in charge reaches the listener.
	dial(t, first, next.Cert, p.Clock.Now())

	// The second node restarted with the switch: replaced at start.
	if err := a2.Reload(p.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	restarted, issued, err := server.ManagedCertificate(ctx, tls2, names, svc2, "system:node2", p.Clock, nil)
	if err != nil || !issued || restarted.Leaf().CheckSignatureFrom(next.Cert) != nil {
		t.Fatalf("the second node's start after the switch: issued %v, %v; want a certificate of %s", issued, err, next.Cert.Subject)
	}
	dial(t, restarted, next.Cert, p.Clock.Now())
}

// dial connects over TLS to a listener serving c, trusting only pin.
func dial(t *testing.T, c *server.Certificate, pin *x509.Certificate, now time.Time) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), TLSConfig: server.TLSConfig(c.GetCertificate, 0, 0)}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(pin)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Time: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("a client pinning %s: %v", pin.Subject, err)
	}
	conn.Close()
}
