package admin

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// A one-time challenge for a profile that never takes one (static, or a
// webhook's) could never be used: it is refused when asked for.
func TestTakesOneTimeChallenges(t *testing.T) {
	for mode, ok := range map[string]bool{"": true, "any": true, "onetime": true, "static": false, "webhook": false} {
		err := TakesOneTimeChallenges(pki.Profile{Name: "p", ChallengeMode: mode})
		if (err == nil) != ok || (err != nil && pki.ErrorCode(err) != pki.EBadRequest) {
			t.Errorf("challenge mode %q: %v, want ok %v", mode, err, ok)
		}
	}
}

// A challenge lives between a second and MaxChallengeTTL: a shorter one
// ("1ns", "500ms" through the API) would be expired when it is made.
func TestChallengeLifetimeBounds(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	p := pki.DefaultProfile()
	svc := New(st, clock, nil, map[string]pki.Profile{p.Name: p}, p.Name)
	for _, tc := range []struct {
		ttl time.Duration
		ok  bool
	}{
		{-5 * time.Hour, false},
		{0, false},
		{time.Nanosecond, false},
		{500 * time.Millisecond, false},
		{time.Second - 1, false},
		{time.Second, true},
		{time.Hour, true},
		{MaxChallengeTTL, true},
		{MaxChallengeTTL + time.Second, false},
	} {
		_, c, err := svc.NewChallenge(ctx, tc.ttl, "", "test")
		if !tc.ok {
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), "between 1s and 720h (30 days)") {
				t.Errorf("ttl %s: %v, want a bad request naming the bounds", tc.ttl, err)
			}
			continue
		}
		if err != nil || !c.ExpiresAt.Equal(clock.Now().Add(tc.ttl)) {
			t.Errorf("ttl %s: %v, expires %s", tc.ttl, err, c.ExpiresAt)
		}
	}
}

// A challenge bound to a subject the issuer refuses in every subject (a
// control, format or line-separator character in a value) could never be
// used: it is refused when asked for, naming the character, and nothing is
// stored. Other non-ASCII text is a subject like any other.
func TestChallengeSubjectCharacters(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	p := pki.DefaultProfile()
	svc := New(st, clock, nil, map[string]pki.Profile{p.Name: p}, p.Name)
	for _, tc := range []struct {
		subject string
		refused string // what the refusal names, "" when the subject is fine
	}{
		{"CN=x\u200by", "U+200B"},
		{"CN=dev\u202egnp.exe", "U+202E"},
		{"CN=device-1,O=Ac\u00adme", "U+00AD"},
		{"CN=a\u2028b", "U+2028"},
		{"CN=a\x07b", "U+0007"},
		// What else the issuer refuses in every subject.
		{"CN=d,C=usa", "countryName"},
		{"CN=" + strings.Repeat("x", 65), "longer than 64"},
		// A subject emailAddress must be bound as an email too.
		{"CN=d,emailAddress=d@corp.example", "must also be bound as an email"},
		{"CN=Zoë,O=Acme", ""},
		{"CN=device-1", ""},
		// A subject that is no RFC 4514 name is quoted as it was written
		// (one backslash where one was typed: Go's %q doubled them).
		{`CN=x\q`, `subject "CN=x\q": CN: the escape \q`},
		{`CN=a;O=b`, `subject "CN=a;O=b": CN: ; must be escaped`},
	} {
		before, _, err := st.ListChallenges(ctx, store.ChallengeFilter{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = svc.NewChallengeFor(ctx, ChallengeSpec{TTL: time.Hour, Subject: tc.subject, Actor: "test"})
		after, _, _ := st.ListChallenges(ctx, store.ChallengeFilter{})
		if tc.refused == "" {
			if err != nil || len(after) != len(before)+1 {
				t.Errorf("subject %q: %v, want a challenge", tc.subject, err)
			}
			continue
		}
		if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), tc.refused) {
			t.Errorf("subject %q: %v, want a bad request naming %s", tc.subject, err, tc.refused)
		}
		if len(after) != len(before) {
			t.Errorf("subject %q: a refused challenge was stored", tc.subject)
		}
	}
}

// A bound email the issuer would refuse, or a subject emailAddress not
// bound as an email too, makes no challenge: no enrollment could use it.
func TestChallengeBoundEmails(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	p := pki.DefaultProfile()
	svc := New(st, clock, nil, map[string]pki.Profile{p.Name: p}, p.Name)
	for _, tc := range []struct {
		subject string
		emails  []string
		refused string
	}{
		{"", []string{"a@x@y"}, "invalid email address"},
		{"", []string{"a b@x.example"}, "invalid email address"},
		{"", []string{"a@-bad-"}, "invalid email address"},
		{"", []string{"é@x.example"}, "invalid email address"},
		{"CN=ok,emailAddress=a@x.example", nil, "must also be bound as an email"},
		{"CN=ok,emailAddress=a@x.example", []string{"b@x.example"}, "must also be bound as an email"},
		{"CN=ok,emailAddress=a@x.example", []string{"a@X.example"}, ""},
		{"CN=ok", []string{"dev@corp.example"}, ""},
	} {
		_, _, err := svc.NewChallengeFor(ctx, ChallengeSpec{TTL: time.Hour, Subject: tc.subject, Emails: tc.emails, Actor: "test"})
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("subject %q, emails %q: %v, want a challenge", tc.subject, tc.emails, err)
		case tc.refused != "" && (pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("subject %q, emails %q: %v, want a bad request saying %q", tc.subject, tc.emails, err, tc.refused)
		}
	}
}

// A binding the profile's subject or name rules refuse (subject_required,
// subject_fixed, subject_patterns, subject_allowed, dns_patterns,
// email_patterns, require_san, max_sans) would refuse every enrollment
// with it, as those rules refuse the request: it is refused when asked
// for, naming what and the rule, and nothing is stored. A challenge bound
// to nothing leaves the names to the enrollment.
func TestChallengeBindingProfileRules(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	strict := pki.DefaultProfile()
	strict.Name = "strict"
	strict.SubjectRequired = []string{"CN"}
	strict.SubjectFixed = map[string]string{"O": "Acme"}
	strict.SubjectPatterns = map[string]string{"CN": `^dev-[0-9]+$`}
	strict.DNSPatterns = []string{`^[a-z0-9-]+\.corp\.example$`}
	strict.EmailPatterns = []string{`@corp\.example$`}
	strict.SANFixed = []string{"dns:vpn.corp.example"}
	strict.MaxSANs = 3
	needsSAN := pki.DefaultProfile()
	needsSAN.Name = "needs-san"
	needsSAN.RequireSAN = true
	hosts := pki.DefaultProfile()
	hosts.Name = "hosts"
	hosts.DNSPatterns = []string{`\.corp\.example$`}
	profiles := map[string]pki.Profile{"default": pki.DefaultProfile(), strict.Name: strict, needsSAN.Name: needsSAN, hosts.Name: hosts}
	svc := New(st, clock, nil, profiles, "default")
	for _, tc := range []struct {
		name, profile, subject string
		dns, emails            []string
		refused                string // what the refusal names, "" when the binding is usable
	}{
		{name: "unbound", profile: "strict"},
		{name: "allowed subject", profile: "strict", subject: "CN=dev-1"},
		{name: "fixed attribute replaced", profile: "strict", subject: "CN=dev-1,O=Other"},
		{name: "pattern", profile: "strict", subject: "CN=laptop", refused: `subject CN "laptop" is not allowed by the profile (subject_patterns.CN)`},
		{name: "required", profile: "strict", subject: "O=Acme", refused: "the subject must contain CN (subject_required)"},
		{name: "unlisted attribute", profile: "strict", subject: "CN=dev-1,OU=admins", refused: "attribute OU is not allowed by profile \"strict\""},
		{name: "repeated attribute", profile: "strict", subject: "CN=dev-1,CN=dev-2", refused: "2 CN attributes"},
		{name: "allowed name", profile: "strict", dns: []string{"a.corp.example"}, emails: []string{"d@corp.example"}},
		{name: "dns pattern", profile: "strict", subject: "CN=dev-1", dns: []string{"a.other.example"}, refused: `DNS name "a.other.example" is not allowed by the profile (dns_patterns)`},
		{name: "email pattern", profile: "strict", emails: []string{"d@gmail.example"}, refused: `email address "d@gmail.example" is not allowed by the profile (email_patterns)`},
		{name: "email left out by dns patterns", profile: "hosts", emails: []string{"d@corp.example"}, refused: "(dns_patterns: a profile that names its hosts allows no email address that email_patterns does not)"},
		{name: "max sans with fixed", profile: "strict", dns: []string{"a.corp.example", "b.corp.example", "c.corp.example"}, refused: "4 subject alternative names with the profile's fixed ones (san_fixed), the profile allows at most 3 (max_sans)"},
		{name: "fixed name bound too", profile: "strict", dns: []string{"a.corp.example", "b.corp.example", "VPN.corp.example"}},
		{name: "subject alone allows no name", profile: "needs-san", subject: "CN=d", refused: "the profile requires a subject alternative name (require_san)"},
		{name: "subject with a name", profile: "needs-san", subject: "CN=d", dns: []string{"d.example"}},
		{name: "CN as a host", profile: "hosts", subject: "CN=www.other.example", refused: `subject CN "www.other.example" reads as a host name the profile's DNS patterns do not allow`},
		{name: "CN as a host beside a DNS name", profile: "hosts", subject: "CN=www.other.example", dns: []string{"www.corp.example"}},
		{name: "default profile takes any", subject: "CN=laptop,OU=admins,CN=x", dns: []string{"a.other.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _, err := st.ListChallenges(ctx, store.ChallengeFilter{})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = svc.NewChallengeFor(ctx, ChallengeSpec{TTL: time.Hour, Profile: tc.profile, Subject: tc.subject, DNSNames: tc.dns, Emails: tc.emails, Actor: "test"})
			after, _, _ := st.ListChallenges(ctx, store.ChallengeFilter{})
			if tc.refused == "" {
				if err != nil || len(after) != len(before)+1 {
					t.Errorf("%v, want a challenge", err)
				}
				return
			}
			msg := pki.ErrorMessage(err)
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(msg, tc.refused) || !strings.HasSuffix(msg, "no enrollment could use this challenge") {
				t.Errorf("%v, want a bad request saying %q, and that no enrollment could use it", err, tc.refused)
			}
			if len(after) != len(before) {
				t.Error("a refused challenge was stored")
			}
		})
	}
}
