package server_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store/sqlite"
)

type routes map[string]http.Handler

func (r routes) Routes() map[string]http.Handler { return r }

func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(name)) })
}

// SCEP on both listeners, EST on HTTPS only; a conflict is an error at
// start, not a panic.
func TestMuxes(t *testing.T) {
	h := server.Handlers{SCEP: routes{"/scep": named("scep")}, EST: routes{"/.well-known/est/{op}": named("est")}, NDES: routes{"/certsrv/mscep_admin/{$}": named("ndes")}}
	plain, err := server.PlainMux(h)
	if err != nil {
		t.Fatal(err)
	}
	secure, err := server.TLSMux(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mux  http.Handler
		path string
		want string
	}{
		{plain, "/scep", "scep"}, {secure, "/scep", "scep"},
		{plain, "/.well-known/est/cacerts", ""}, {secure, "/.well-known/est/cacerts", "est"},
		{secure, "/certsrv/mscep_admin/", "ndes"}, // on plain HTTP for loopback only: routes_test.go
	} {
		rec := httptest.NewRecorder()
		tc.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if got := rec.Body.String(); tc.want != "" && got != tc.want || tc.want == "" && rec.Code != http.StatusNotFound {
			t.Errorf("%s: %d %q, want %q", tc.path, rec.Code, got, tc.want)
		}
	}
	if _, err := server.PlainMux(server.Handlers{SCEP: routes{"/x": named("a")}, NDES: routes{"/x": named("b")}}); err == nil {
		t.Error("a conflicting pattern was mounted")
	}
}

func TestManagedCertificate(t *testing.T) {
	dir := t.TempDir()
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	authority, _, err := ca.LoadOrCreate(dir, ca.InitOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := enroll.New(st, authority, clock, nil, enroll.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tlsDir := filepath.Join(dir, "tls")
	names := []string{"ca.acme.example", "127.0.0.1"}
	c, issued, err := server.ManagedCertificate(ctx, tlsDir, names, svc, "", clock, nil)
	if err != nil || !issued {
		t.Fatalf("first start: issued=%v, %v", issued, err)
	}
	first := c.Leaf()
	if strings.Join(first.DNSNames, ",") != "ca.acme.example" || len(first.IPAddresses) != 1 || first.ExtKeyUsage[0].String() == "" {
		t.Errorf("names %v %v", first.DNSNames, first.IPAddresses)
	}
	pair, _ := c.GetCertificate(&tls.ClientHelloInfo{})
	if len(pair.Certificate) != 2 {
		t.Errorf("the served chain has %d certificates, want the leaf and the issuing CA", len(pair.Certificate))
	}
	// A restart keeps it.
	c2, issued, err := server.ManagedCertificate(ctx, tlsDir, names, svc, "", clock, nil)
	if err != nil || issued || !c2.Leaf().Equal(first) {
		t.Fatalf("restart: issued=%v, %v", issued, err)
	}
	// Other names: a new one.
	c3, issued, err := server.ManagedCertificate(ctx, tlsDir, []string{"other.example"}, svc, "", clock, nil)
	if err != nil || !issued || c3.Leaf().DNSNames[0] != "other.example" {
		t.Fatalf("new names: issued=%v, %v", issued, err)
	}
	// Renewal: nothing before two thirds of the lifetime, a new one after.
	if err := c3.RenewIfDue(ctx); err != nil || !c3.Leaf().Equal(c3.Leaf()) {
		t.Fatal(err)
	}
	before := c3.Leaf()
	clock.Set(server.RenewAt(before).Add(-time.Minute))
	if err := c3.RenewIfDue(ctx); err != nil || !c3.Leaf().Equal(before) {
		t.Fatalf("renewed too early: %v", err)
	}
	clock.Set(server.RenewAt(before).Add(time.Minute))
	if err := c3.RenewIfDue(ctx); err != nil || c3.Leaf().Equal(before) {
		t.Fatalf("not renewed when due: %v", err)
	}
	if !c3.Leaf().NotAfter.After(before.NotAfter) {
		t.Error("the renewed certificate does not last longer")
	}

	// A load balancer's name longer than a CN may be, and names given twice
	// (in two cases): the long name is a SAN only, each name once.
	long := "internal-scepter-prod-loadbalancer-1234567890.eu-central-1.elb.amazonaws.com"
	c5, _, err := server.ManagedCertificate(ctx, filepath.Join(dir, "tls-long"), []string{long, "x.example", "X.EXAMPLE", "127.0.0.1", "127.0.0.1"}, svc, "", clock, nil)
	if err != nil {
		t.Fatalf("a name over 64 characters: %v", err)
	}
	if l := c5.Leaf(); l.Subject.CommonName != "x.example" || strings.Join(l.DNSNames, ",") != long+",x.example" || len(l.IPAddresses) != 1 {
		t.Errorf("CN %q, DNS %v, IP %v", l.Subject.CommonName, l.DNSNames, l.IPAddresses)
	}
	// A restart with the same names keeps it: the names compare as issued.
	if _, issued, err := server.ManagedCertificate(ctx, filepath.Join(dir, "tls-long"), []string{long, "x.example", "X.EXAMPLE", "127.0.0.1", "127.0.0.1"}, svc, "", clock, nil); err != nil || issued {
		t.Errorf("restart with names in two cases: issued=%v, %v", issued, err)
	}

	// Revoked (its key leaked): replaced at the next look, with a new key,
	// and a restart does not bring the revoked one back.
	revoked := c3.Leaf()
	iss, err := authority.IssuedByUs(revoked, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.RevokeCertificate(ctx, iss.ID, revoked.SerialNumber.Text(16), 1, clock.Now(),
		pki.AuditEvent{Time: clock.Now(), Type: pki.EventRevoked, Actor: "test", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	c4, issued, err := server.ManagedCertificate(ctx, tlsDir, []string{"other.example"}, svc, "", clock, nil)
	if err != nil || !issued || c4.Leaf().Equal(revoked) {
		t.Fatalf("restart with a revoked certificate: issued=%v, %v", issued, err)
	}
	if err := c3.RenewIfDue(ctx); err != nil || c3.Leaf().Equal(revoked) {
		t.Fatalf("a revoked certificate was not replaced: %v", err)
	}
	if pki.SamePublicKey(c3.Leaf().PublicKey, revoked.PublicKey) {
		t.Error("the replacement kept the revoked certificate's key")
	}
}
