package enroll_test

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// syncBuffer is a log destination two services write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A user name that is no EST user's is often the password or a one-time
// challenge typed into the user field (user and password swapped), and
// the challenge still works: the refusal names such a name in the audit
// trail only by a tag, the same on every node, and the log not at all. An
// EST user's name is named as sent.
func TestFailedLoginHidesAnUnknownName(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{})
	addESTUser(t, f, "fleet-7", "device-pass")
	ctx := context.Background()
	secret, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	// Two nodes on one store, each with its own service (and key read).
	var nodes []*enroll.Service
	for range 2 {
		svc, err := enroll.New(f.st, f.auth, f.clock, slog.New(slog.NewTextHandler(&logs, nil)), enroll.Config{StaticChallenge: static})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, svc)
	}
	tagged := `^attempted_user: unknown name \(tag [0-9a-f]{16}\)$`
	cases := []struct {
		name        string
		node        int
		user        string
		checkFirst  bool // refused by CheckCredentials (as the EST handler calls it), else by Enroll
		wantDetail  string
		sameTagAs   int // the case whose detail this one's equals, or -1
		differentTo int // the case whose detail this one's differs from, or -1
	}{
		{"a live challenge as the user name", 0, secret, true, tagged, -1, -1},
		{"the same on another node, at Enroll", 1, secret, false, tagged, 0, -1},
		{"another unknown name", 0, "admin", true, tagged, -1, 0},
		{"an EST user's name", 1, "fleet-7", true, `^attempted_user: fleet-7$`, -1, -1},
		{"an EST user's name, at Enroll", 0, "fleet-7", false, `^attempted_user: fleet-7$`, -1, -1},
	}
	var details []string
	for i, c := range cases {
		f.clock.Advance(time.Second)
		ev := enroll.Evidence{HTTPUser: c.user, HTTPPassword: "wrong password"}
		remote := "192.0.2.20:443"
		if c.checkFirst {
			_, err = nodes[c.node].CheckCredentials(ctx, enroll.Request{Evidence: ev, Protocol: pki.ProtocolEST, RemoteAddr: remote})
		} else {
			req := named(t, "", "refused-"+string(rune('a'+i)))
			req.Evidence, req.Protocol, req.RemoteAddr, req.TransactionID = ev, pki.ProtocolEST, remote, ""
			_, err = nodes[c.node].Enroll(ctx, req)
		}
		if pki.ErrorCode(err) != pki.EUnauthorized {
			t.Fatalf("%s: %v, want unauthorized", c.name, err)
		}
		evs, err := f.st.ListAudit(ctx, store.AuditFilter{Type: pki.EventEnrollFailed, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != i+1 {
			t.Fatalf("%s: %d refusals recorded, want %d", c.name, len(evs), i+1)
		}
		var detail string
		for _, e := range evs {
			if e.Time.Equal(f.clock.Now()) {
				detail = e.Detail
			}
		}
		details = append(details, detail)
		if !regexp.MustCompile(c.wantDetail).MatchString(detail) {
			t.Errorf("%s: detail %q, want %s", c.name, detail, c.wantDetail)
		}
		if c.sameTagAs >= 0 && detail != details[c.sameTagAs] {
			t.Errorf("%s: detail %q, want %q as before: the same name, the same tag", c.name, detail, details[c.sameTagAs])
		}
		if c.differentTo >= 0 && detail == details[c.differentTo] {
			t.Errorf("%s: detail %q, as for another name", c.name, detail)
		}
	}
	all, err := f.st.ListAudit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if strings.Contains(e.Detail+e.Reason+e.Actor+e.Subject+e.Profile+e.TransactionID, secret) {
			t.Errorf("audit event %+v shows the challenge typed as the user name", e)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log shows the challenge typed as the user name:\n%s", logs.String())
	}
	// It was a live secret, and it still is: given as the password it passes.
	if _, err := nodes[0].CheckCredentials(ctx, enroll.Request{Evidence: enroll.Evidence{HTTPUser: "x", HTTPPassword: secret},
		Protocol: pki.ProtocolEST, RemoteAddr: "192.0.2.21:443"}); err != nil {
		t.Errorf("the challenge as the password: %v", err)
	}
}

// When the user table does not answer (here: the client hung up during
// the look-up), the store's error quotes the name sent; the refusal's log
// line carries that error, and must not carry a secret typed as the name.
func TestFailedLookupHidesTheName(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{})
	secret, _, err := f.admin.NewChallenge(context.Background(), time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	svc, err := enroll.New(f.st, f.auth, f.clock, slog.New(slog.NewTextHandler(&logs, nil)), enroll.Config{StaticChallenge: static})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ev := enroll.Evidence{HTTPUser: secret, HTTPPassword: "wrong password"}
	if _, err := svc.CheckCredentials(ctx, enroll.Request{Evidence: ev, Protocol: pki.ProtocolEST, RemoteAddr: "192.0.2.22:443"}); err == nil {
		t.Fatal("a request whose look-up failed passed")
	} else if strings.Contains(err.Error(), secret) {
		t.Errorf("the error %q shows the challenge typed as the user name", err)
	}
	if !strings.Contains(logs.String(), "enrollment refused") {
		t.Fatalf("no refusal logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log shows the challenge typed as the user name:\n%s", logs.String())
	}
	evs, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventEnrollFailed, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || strings.Contains(evs[0].Detail+evs[0].Reason, secret) {
		t.Errorf("refusals %+v, want one that does not show the challenge", evs)
	}
}
