package enroll_test

import (
	"context"
	"crypto/x509"
	"slices"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

// r128: a request held for approval whose SAN came in Microsoft's
// extension-request attribute is issued with it when approved: the held
// request is read back as the protocol edges read it when it came.
func TestApprovedRequestKeepsItsMicrosoftSAN(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RequireApproval = "approval", true
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"approval": p}, DefaultProfile: "approval"})
	ctx := context.Background()
	req, err := x509.ParseCertificateRequest(pkitest.SignedCSR(t, key(t), "dev", pkitest.MicrosoftExtensionRequestOfSANs(t, "held.example")))
	if err != nil {
		t.Fatal(err)
	}
	if problem := csr.MicrosoftExtensions(req); problem != "" {
		t.Fatal(problem)
	}
	r := enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: static}, Protocol: pki.ProtocolEST, TransactionID: "tx-ms", RemoteAddr: "127.0.0.1:1234"}
	res, err := f.svc.Enroll(ctx, r)
	if err != nil || res.Pending == nil {
		t.Fatalf("%+v, %v; want held", res, err)
	}
	issued, err := f.svc.Approve(ctx, res.Pending.ID, "cli:test")
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	if !slices.Equal(issued.Certificate.DNSNames, []string{"held.example"}) {
		t.Errorf("issued for %q, want held.example", issued.Certificate.DNSNames)
	}
}
