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

// The challenge.created detail quotes the bound subject as it was written,
// escaped once: its RFC 4514 backslashes are not doubled (r111: the detail
// read "CN=\\\"\\>…" where the subject was CN=\"\>…), and a character that
// is not printable still comes out escaped.
func TestChallengeCreatedDetailQuotesTheSubjectOnce(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	p := pki.DefaultProfile()
	svc := New(st, clock, nil, map[string]pki.Profile{p.Name: p}, p.Name)
	for _, tc := range []struct{ subject, want string }{
		{`CN=a\,b`, `bound to subject "CN=a\,b"`},
		{`CN=\"\>\<img src\=x\>`, `bound to subject "CN=\"\>\<img src\=x\>"`},
		{`O=\=cmd,CN=x`, `bound to subject "O=\=cmd,CN=x"`},
		{`CN=Grüße`, `bound to subject "CN=Grüße"`},
	} {
		_, ch, err := svc.NewChallengeFor(ctx, ChallengeSpec{TTL: time.Hour, Subject: tc.subject, Actor: "cli:test"})
		if err != nil {
			t.Errorf("subject %s: %v", tc.subject, err)
			continue
		}
		evs, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventChallengeCreated})
		if err != nil {
			t.Fatal(err)
		}
		var detail string
		for _, ev := range evs {
			if strings.HasPrefix(ev.Detail, "challenge "+ch.ID+" ") {
				detail = ev.Detail
			}
		}
		if !strings.Contains(detail, tc.want) {
			t.Errorf("subject %s: detail %q, want it to hold %q", tc.subject, detail, tc.want)
		}
	}
}
