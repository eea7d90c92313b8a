package enroll_test

import (
	"context"
	"crypto/x509"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// A profile with fixed SANs and DNS patterns (examples/scepter.toml's vpn
// profile): a renewal asks for every name of the certificate, the fixed
// ones included (RFC 7030 §4.2.2), and is issued; a device still cannot ask
// for a name outside the patterns that is not one of the fixed ones.
func TestRenewalKeepsFixedSANsOutsideThePatterns(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RenewalWindow = "vpn", 1
	p.SANFixed = []string{"dns:vpn.acme.example"}
	p.DNSPatterns = []string{`^[a-z0-9-]+\.devices\.acme\.example$`}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"vpn": p}, DefaultProfile: "vpn"})
	ctx := context.Background()
	first, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "gw-1", "gw-1.devices.acme.example"))
	if err != nil {
		t.Fatal(err)
	}
	renew := namedWithKey(t, newKey(t), "", "gw-1", first.Certificate.DNSNames...)
	renew.Renewal, renew.Evidence.SignerCert = true, first.Certificate
	if _, err := f.svc.Enroll(ctx, renew); err != nil {
		t.Fatalf("renewal with the certificate's names %v: %v", first.Certificate.DNSNames, err)
	}
	other := namedWithKey(t, newKey(t), static, "gw-2", "gw-2.devices.acme.example", "www.bank.example")
	if _, err := f.svc.Enroll(ctx, other); pki.ErrorCode(err) != pki.EBadRequest {
		t.Errorf("a name outside the patterns: %v, want badRequest", err)
	}
}

// With DNS patterns and no DNS SAN, a CN that reads as a host name must
// match them: a relying party without a DNS SAN to look at falls back to
// the CN (OpenSSL's hostname check), which would bypass the patterns.
func TestHostNameCNMustMatchTheDNSPatterns(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name = "corp"
	p.DNSPatterns = []string{`^[a-z0-9-]+\.corp\.example$`}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"corp": p}, DefaultProfile: "corp"})
	ctx := context.Background()
	for _, c := range []struct {
		cn   string
		want pki.Code
	}{
		{"www.bank.example", pki.EBadRequest},
		{"*.bank.example", pki.EBadRequest},
		{"host-1.corp.example", ""},
		{"DESKTOP-7.CORP.example", ""}, // host names match in any case
		{"WWW.BANK.example", pki.EBadRequest},
		{"device 9", ""},
		{"device-9", ""},
		{"alice@bank.example", ""},
		// OpenSSL's hostname check matches these through the CN too: a
		// wildcard inside a label, an underscore, an IP literal given as
		// the host (in any of its spellings).
		{"w*.bank.example", pki.EBadRequest},
		{"db_1.bank.example", pki.EBadRequest},
		{"www.bank.example.", pki.EBadRequest},
		{"0x0a.1", pki.EBadRequest},
		{"10.0.0.1", pki.EBadRequest},
		{"10.9.9.9.", pki.EBadRequest},
		{"::ffff:10.9.9.9", pki.EBadRequest},
		{"[::1]", pki.EBadRequest},
		{"fe80::1%eth0", pki.EBadRequest},
		{"*.9.9.9", pki.EBadRequest},
		{"1.2.3", pki.EBadRequest},
		// Device names that only look like numbers or addresses.
		{"v1.2", ""},
		{"00:12:4b:00:1c:a1:b2:c3", ""},
		{"aa:bb:cc:dd:ee:ff", ""},
		{"123456789", ""},
	} {
		_, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, c.cn))
		if pki.ErrorCode(err) != c.want && !(c.want == "" && err == nil) {
			t.Errorf("CN %q: %v, want %q", c.cn, err, c.want)
		}
	}
	// Beside a DNS SAN the CN is not matched as a host name (RFC 6125
	// §6.4.4), so it is not held to the patterns either.
	if _, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "laptop-42.corp.local", "laptop-42.corp.example")); err != nil {
		t.Errorf("a host-name CN beside an allowed DNS SAN: %v", err)
	}
}

// TestIPAddressCNMustBeInTheIPRanges: a CN that reads as an IP address is
// matched as the host by OpenSSL's hostname check when the certificate has
// no DNS SAN, so a profile's ip_ranges hold it as they hold an IP SAN.
func TestIPAddressCNMustBeInTheIPRanges(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name = "lan"
	p.IPRanges = []string{"10.8.0.0/16"}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"lan": p}, DefaultProfile: "lan"})
	ctx := context.Background()
	for _, c := range []struct {
		cn   string
		want pki.Code
	}{
		{"10.8.1.1", ""},
		{"::ffff:10.8.1.1", ""},
		{"10.9.9.9", pki.EBadRequest},
		{"[10.9.9.9]", pki.EBadRequest},
		{"fe80::1%eth0", pki.EBadRequest},
		// OpenSSL matches a wildcard CN against an IP literal host.
		{"*.9.9.9", pki.EBadRequest},
		{"1*.9.9.9", pki.EBadRequest},
		{"00:12:4b:00:1c:a1:b2:c3", ""},
		// No DNS patterns: host names are the device's to choose.
		{"www.bank.example", ""},
		{"device-9", ""},
	} {
		_, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, c.cn))
		if pki.ErrorCode(err) != c.want && !(c.want == "" && err == nil) {
			t.Errorf("CN %q: %v, want %q", c.cn, err, c.want)
		}
	}
}

// At a profile whose certificates serve TLS, a one-label CN such as
// "localhost" is a host name too: OpenSSL's hostname check matches it when
// the certificate has no DNS SAN. At a clientAuth profile, one label (a
// device ID) is left alone, as in TestHostNameCNMustMatchTheDNSPatterns.
func TestOneLabelCNAtAServerProfile(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name = "web"
	p.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	p.DNSPatterns = []string{`^[a-z0-9-]+\.corp\.example$`}
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"web": p}, DefaultProfile: "web"})
	ctx := context.Background()
	for _, c := range []struct {
		cn   string
		want pki.Code
	}{
		{"localhost", pki.EBadRequest},
		{"wpad", pki.EBadRequest},
		{"intranet.", pki.EBadRequest},
		{"123456", ""},
		{"web 1", ""},
		{"www1.corp.example", ""},
	} {
		_, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, c.cn))
		if pki.ErrorCode(err) != c.want && !(c.want == "" && err == nil) {
			t.Errorf("CN %q: %v, want %q", c.cn, err, c.want)
		}
	}
}
