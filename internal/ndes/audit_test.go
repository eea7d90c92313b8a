package ndes_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/ndes"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// TestRefusedLoginsAreAudited drives the page, served on 127.0.0.1 by the
// real admin service and an SQLite store, through wrong logins, the
// lockout they cause and the right password refused during it, and reads
// the audit trail after each request: every refusal is in it, by the
// address, with the user name tried (a name that is not the page's only by
// its tag) and never a password; the requests refused during the lockout
// once a minute, with their count.
func TestRefusedLoginsAreAudited(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	p := pki.DefaultProfile()
	p.ChallengeMode = enroll.ChallengeOneTime
	adm := admin.New(st, clock, nil, map[string]pki.Profile{p.Name: p}, p.Name)
	// Five minutes' lockout: long enough for a second record of the
	// refusals during it.
	h, err := ndes.New(adm, ndes.Config{Username: user, Password: pass, Clock: clock, Audit: st,
		Lockout: ndes.Lockout{Base: 5 * time.Minute}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	const actor = "ndes:127.0.0.1"
	lockedUntil := "locked out until 2026-11-25T12:05:00Z"
	type want struct {
		typ, reason, detail string // reason: a prefix
	}
	for i, step := range []struct {
		advance    time.Duration
		user, pass string
		status     int
		events     []want // appended to the trail by this request
	}{
		{user: user, pass: pass, status: http.StatusOK,
			events: []want{{pki.EventChallengeCreated, "", ""}}},
		{user: user, pass: "wrong password 1", status: http.StatusUnauthorized,
			events: []want{{pki.EventNDESLoginFailed, "wrong credentials", "user " + user}}},
		// The password typed into the user field: only its tag is kept.
		{user: pass, pass: "x", status: http.StatusUnauthorized,
			events: []want{{pki.EventNDESLoginFailed, "wrong credentials", "unknown name (tag "}}},
		{user: "", pass: pass, status: http.StatusUnauthorized,
			events: []want{{pki.EventNDESLoginFailed, "wrong credentials", "no user name"}}},
		{user: user, pass: "wrong password 2", status: http.StatusUnauthorized,
			events: []want{{pki.EventNDESLoginFailed, "wrong credentials", "user " + user}}},
		// The fifth locks the address out.
		{user: user, pass: "wrong password 3", status: http.StatusTooManyRequests,
			events: []want{{pki.EventNDESLoginLocked, "wrong credentials; " + lockedUntil, "user " + user}}},
		// The right password during the lockout: refused unchecked, recorded.
		{user: user, pass: pass, status: http.StatusTooManyRequests,
			events: []want{{pki.EventNDESLoginFailed, lockedUntil + ", not checked: 1 attempt from this address since the last such record", "user " + user}}},
		// More within the minute: refused, counted for the next record.
		{user: user, pass: pass, status: http.StatusTooManyRequests},
		{user: user, pass: "wrong password 4", status: http.StatusTooManyRequests},
		{advance: time.Minute, user: user, pass: pass, status: http.StatusTooManyRequests,
			events: []want{{pki.EventNDESLoginFailed, lockedUntil + ", not checked: 3 attempts from this address since the last such record", "user " + user}}},
		// Once the lockout is over the right password is served as before.
		{advance: 4 * time.Minute, user: user, pass: pass, status: http.StatusOK,
			events: []want{{pki.EventChallengeCreated, "", ""}}},
	} {
		clock.Advance(step.advance)
		before := auditEvents(t, st)
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/certsrv/mscep_admin/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(step.user, step.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != step.status {
			t.Fatalf("step %d: status %d, want %d", i, resp.StatusCode, step.status)
		}
		// r138: the person locked out is told when to try again.
		if wait := resp.Header.Get("Retry-After"); step.status == http.StatusTooManyRequests &&
			!strings.Contains(string(body), "try again in "+pki.ShortDuration(time.Duration(atoi(t, wait))*time.Second)) {
			t.Errorf("step %d: the 429 says %q, Retry-After %s", i, body, wait)
		}
		got := auditEvents(t, st)[len(before):]
		if len(got) != len(step.events) {
			t.Fatalf("step %d: %d new audit events, want %d: %+v", i, len(got), len(step.events), got)
		}
		for j, w := range step.events {
			ev := got[j]
			if ev.Type != w.typ || ev.Actor != actor || !strings.HasPrefix(ev.Reason, w.reason) || !strings.HasPrefix(ev.Detail, w.detail) {
				t.Errorf("step %d: event %+v, want type %s, actor %s, reason %q…, detail %q…", i, ev, w.typ, actor, w.reason, w.detail)
			}
			if w.typ != pki.EventChallengeCreated && ev.Outcome != "failure" {
				t.Errorf("step %d: outcome %q, want failure", i, ev.Outcome)
			}
			for _, field := range []string{ev.Reason, ev.Detail, ev.Subject} {
				if strings.Contains(field, pass) || strings.Contains(field, "wrong password") {
					t.Errorf("step %d: the audit trail carries a password: %+v", i, ev)
				}
			}
		}
	}
}

// auditEvents is the whole trail, oldest first.
func auditEvents(t *testing.T, st store.Store) []pki.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// TestRefusedLoginUnrecordedAnswersTheSame: when the audit trail cannot
// take a refused login, the client gets the same answer (401, then 429 with
// Retry-After) and the log says what was not recorded.
func TestRefusedLoginUnrecordedAnswersTheSame(t *testing.T) {
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	audit := &auditLog{fail: errors.New("database is locked")}
	f := newFixture(t, ndes.Config{Clock: clock, Audit: audit})
	for i, step := range []struct {
		pass       string
		status     int
		retryAfter string
	}{
		{"wrong", http.StatusUnauthorized, ""},
		{"wrong", http.StatusUnauthorized, ""},
		{"wrong", http.StatusUnauthorized, ""},
		{"wrong", http.StatusUnauthorized, ""},
		{"wrong", http.StatusTooManyRequests, "60"}, // locks
		{pass, http.StatusTooManyRequests, "60"},    // refused during the lockout
	} {
		resp, _ := f.do(t, http.MethodGet, "/certsrv/mscep_admin/", true, user, step.pass)
		if resp.StatusCode != step.status || resp.Header.Get("Retry-After") != step.retryAfter {
			t.Fatalf("step %d: status %d, Retry-After %q; want %d, %q", i, resp.StatusCode, resp.Header.Get("Retry-After"), step.status, step.retryAfter)
		}
	}
	logs := f.logs()
	if n := strings.Count(logs, "a refused login is not in the audit trail"); n != 6 {
		t.Errorf("%d warnings of unrecorded refusals, want 6:\n%s", n, logs)
	}
	if !strings.Contains(logs, "database is locked") || !strings.Contains(logs, "level=WARN") {
		t.Errorf("the failed write is not logged as a warning:\n%s", logs)
	}
	if f.m.count() != 0 {
		t.Fatal("a challenge was minted")
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("Retry-After %q: %v", s, err)
	}
	return n
}
