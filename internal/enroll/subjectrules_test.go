package enroll_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// subjectOIDs are the attribute types these tests write subjects with.
var subjectOIDs = map[string]asn1.ObjectIdentifier{
	"CN": {2, 5, 4, 3}, "O": {2, 5, 4, 10}, "OU": {2, 5, 4, 11}, "title": {2, 5, 4, 12},
	"DC": {0, 9, 2342, 19200300, 100, 1, 25}, "UID": {0, 9, 2342, 19200300, 100, 1, 1},
}

// subjectRequest is a request for the subject of attrs ("CN=gw-1", each
// its own RDN, most significant first as in DER).
func subjectRequest(t *testing.T, challenge string, attrs ...string) enroll.Request {
	t.Helper()
	return subjectRequestWith(t, challenge, csr.Template{}, attrs...)
}

// subjectRequestWith is subjectRequest with the SANs of tmpl.
func subjectRequestWith(t *testing.T, challenge string, tmpl csr.Template, attrs ...string) enroll.Request {
	t.Helper()
	var rdns pkix.RDNSequence
	for _, a := range attrs {
		typ, v, _ := strings.Cut(a, "=")
		oid, ok := subjectOIDs[typ]
		if !ok {
			t.Fatalf("no OID for %s", typ)
		}
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}})
	}
	raw, err := asn1.Marshal(rdns)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.RawSubject = raw
	der, err := csr.Create(tmpl, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: challenge}, Protocol: pki.ProtocolSCEP,
		TransactionID: "tx-" + strings.Join(attrs, "-"), RemoteAddr: "192.0.2.10:1234"}
}

// vpnProfile is examples/scepter.toml's vpn profile, as far as the subject
// goes.
func vpnProfile() pki.Profile {
	p := pki.DefaultProfile()
	p.Name, p.ChallengeMode, p.RenewalWindow = "vpn", enroll.ChallengeAny, 1
	p.SubjectRequired = []string{"CN"}
	p.SubjectFixed = map[string]string{"O": "Acme"}
	p.SubjectPatterns = map[string]string{"CN": "^[a-z0-9-]{1,63}$"}
	return p
}

// A profile with subject rules (subject_fixed, subject_patterns,
// subject_allowed) decides the whole subject: an attribute type none of its
// rules names is refused, named, and so is a second value of a type not in
// subject_allowed (r60 D2). A profile without them (the default's: any
// subject) or with subject_required alone takes any subject, as before.
func TestSubjectRulesCoverEveryAttribute(t *testing.T) {
	dir := pki.DefaultProfile()
	dir.Name, dir.ChallengeMode = "dir", enroll.ChallengeAny
	dir.SubjectPatterns = map[string]string{"CN": "^[a-z0-9-]+$"}
	dir.SubjectAllowed = []string{"OU", "DC"}
	required := pki.DefaultProfile()
	required.Name, required.ChallengeMode, required.SubjectRequired = "required", enroll.ChallengeAny, []string{"CN"}
	f := newFixture(t, map[string]pki.Profile{"default": pki.DefaultProfile(), "vpn": vpnProfile(), "dir": dir, "required": required}, "default")
	ctx := context.Background()
	for _, c := range []struct {
		profile string
		subject []string
		refused []string // what the refusal names; none: issued
		issued  string   // the issued subject, when it is checked
	}{
		{"vpn", []string{"CN=gw-1"}, nil, "O=Acme,CN=gw-1"},
		{"vpn", []string{"CN=gw-2", "O=Evil"}, nil, "O=Acme,CN=gw-2"},
		{"vpn", []string{"CN=gw-3", "OU=admins"}, []string{"subject attribute OU is not allowed", "CN, O only"}, ""},
		{"vpn", []string{"CN=gw-4", "DC=corp"}, []string{"DC"}, ""},
		{"vpn", []string{"CN=gw-5", "UID=root"}, []string{"UID"}, ""},
		{"vpn", []string{"CN=gw-6", "title=CEO"}, []string{"title"}, ""},
		{"vpn", []string{"CN=gw-7", "OU=admins", "DC=corp", "UID=root", "title=CEO"}, []string{"subject attributes OU, DC, UID, title are not allowed"}, ""},
		{"vpn", []string{"CN=gw-20", "CN=admin"}, []string{"2 CN attributes", "subject_allowed"}, ""},
		{"dir", []string{"DC=example", "DC=corp", "OU=a", "OU=b", "CN=gw-8"}, nil, ""},
		{"dir", []string{"CN=gw-9", "UID=root"}, []string{"UID"}, ""},
		{"dir", []string{"CN=gw-10", "CN=gw-11"}, []string{"2 CN"}, ""},
		{"default", []string{"CN=any", "CN=other", "OU=admins", "title=CEO"}, nil, ""},
		{"required", []string{"CN=any", "OU=admins", "UID=root"}, nil, ""},
	} {
		req := subjectRequest(t, static, c.subject...)
		req.Profile = c.profile
		if c.profile != "default" {
			otp, _, err := f.admin.NewChallenge(ctx, time.Hour, c.profile, "test")
			if err != nil {
				t.Fatal(err)
			}
			req.Evidence.Challenge = otp
		}
		res, err := f.svc.Enroll(ctx, req)
		if len(c.refused) == 0 {
			if err != nil {
				t.Errorf("%s %v: %v, want issued", c.profile, c.subject, err)
			} else if got := csr.NameString(res.Certificate.RawSubject); c.issued != "" && got != reverse(c.issued) {
				t.Errorf("%s %v: issued for %q, want %q", c.profile, c.subject, got, reverse(c.issued))
			}
			continue
		}
		if pki.ErrorCode(err) != pki.EBadRequest {
			t.Errorf("%s %v: %v, want badRequest", c.profile, c.subject, err)
			continue
		}
		for _, want := range c.refused {
			if !strings.Contains(pki.ErrorMessage(err), want) {
				t.Errorf("%s %v: %q does not name %q", c.profile, c.subject, pki.ErrorMessage(err), want)
			}
		}
	}

	// A one-time challenge bound to a subject the profile allows works.
	bound, _, err := f.admin.NewChallengeFor(ctx, admin.ChallengeSpec{TTL: time.Hour, Profile: "vpn", Subject: "CN=gw-30,O=Acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	req := subjectRequest(t, bound, "O=Acme", "CN=gw-30")
	req.Profile = "vpn"
	if _, err := f.svc.Enroll(ctx, req); err != nil {
		t.Errorf("a challenge bound to an allowed subject: %v", err)
	}
}

// reverse turns a DER-order list "A=1,B=2" into the RFC 4514 string
// csr.NameString writes ("B=2,A=1").
func reverse(s string) string {
	parts := strings.Split(s, ",")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ",")
}

// A certificate issued before the profile refused an attribute of its
// subject is not renewed with it: the refusal names the attribute and says
// why the certificate has it.
func TestRenewalOfSubjectTheProfileNowRefuses(t *testing.T) {
	before := vpnProfile()
	before.SubjectFixed, before.SubjectPatterns = nil, nil
	f := newFixture(t, map[string]pki.Profile{"vpn": before}, "vpn")
	ctx := context.Background()
	first, err := f.svc.Enroll(ctx, subjectRequest(t, static, "O=Acme", "CN=gw-1", "OU=admins"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := enroll.New(f.st, f.auth, f.clock, nil, enroll.Config{Profiles: map[string]pki.Profile{"vpn": vpnProfile()}, DefaultProfile: "vpn"})
	if err != nil {
		t.Fatal(err)
	}
	renewal := subjectRequest(t, "", "O=Acme", "CN=gw-1", "OU=admins")
	renewal.Renewal, renewal.Evidence.SignerCert, renewal.TransactionID = true, first.Certificate, "tx-renewal"
	_, err = svc.Enroll(ctx, renewal)
	if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "OU is not allowed") ||
		!strings.Contains(pki.ErrorMessage(err), "certificate to renew has it") {
		t.Errorf("renewal of a subject the profile now refuses: %v", err)
	}
}
