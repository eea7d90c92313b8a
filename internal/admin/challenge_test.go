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
