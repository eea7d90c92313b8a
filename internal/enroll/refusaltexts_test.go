package enroll_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
)

// Refusals say what is wrong (r60 D3): a challenge bound to a subject and
// names, presented with its subject and a name more, names that name; the
// bound subject's attributes in another order are said to be that; a
// renewal by a certificate on hold says it is on hold, which the operator
// can lift.
func TestRefusalTextsSayWhatIsWrong(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RenewalWindow = "default", 1
	f := newFixture(t, map[string]pki.Profile{"default": p}, "default")
	ctx := context.Background()
	mint := func() string {
		t.Helper()
		secret, _, err := f.admin.NewChallengeFor(ctx, admin.ChallengeSpec{TTL: time.Hour, Subject: "CN=gw-7,O=Acme",
			DNSNames: []string{"gw-7.vpn.acme.example"}, Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	for _, c := range []struct {
		name    string
		subject []string // DER order
		dns     []string
		ip      string
		want    string
	}{
		{"an extra DNS name", []string{"O=Acme", "CN=gw-7"}, []string{"gw-7.vpn.acme.example", "x.vpn.acme.example"}, "",
			"bound to other names: dns:x.vpn.acme.example is not bound"},
		{"an extra IP address", []string{"O=Acme", "CN=gw-7"}, []string{"gw-7.vpn.acme.example"}, "10.1.2.3",
			"bound to other names: ip:10.1.2.3 is not bound"},
		{"its attributes in another order", []string{"CN=gw-7", "O=Acme"}, []string{"gw-7.vpn.acme.example"}, "",
			"in another order"},
		{"another subject", []string{"O=Acme", "CN=gw-8"}, []string{"gw-7.vpn.acme.example"}, "",
			"bound to another subject"},
	} {
		tmpl := csr.Template{DNSNames: c.dns}
		if c.ip != "" {
			tmpl.IPAddresses = []net.IP{net.ParseIP(c.ip)}
		}
		req := subjectRequestWith(t, mint(), tmpl, c.subject...)
		_, err := f.svc.Enroll(ctx, req)
		if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), c.want) {
			t.Errorf("%s: %v, want badRequest: %q", c.name, err, c.want)
		}
	}

	first, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "held-dev"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Revoke(ctx, first.Record.SerialHex, "", pki.ReasonCertificateHold, "cli:test"); err != nil {
		t.Fatal(err)
	}
	renewal := namedWithKey(t, newKey(t), "", "held-dev")
	renewal.Renewal, renewal.Evidence.SignerCert, renewal.TransactionID = true, first.Certificate, "tx-held-renewal"
	_, err = f.svc.Enroll(ctx, renewal)
	if pki.ErrorCode(err) != pki.EBadCertID || !strings.Contains(pki.ErrorMessage(err), "on hold (certificateHold)") ||
		!strings.Contains(pki.ErrorMessage(err), "lift the hold") {
		t.Errorf("a renewal by a certificate on hold: %v", err)
	}
}
