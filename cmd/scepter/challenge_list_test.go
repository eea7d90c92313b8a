package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// "requests list" and "challenge list" list every one, past the store's
// largest page (1000): the oldest, first to expire, are not left out.
func TestListsShowEverything(t *testing.T) {
	// Mostly waits on real timers and fsyncs: beside the other such tests,
	// after the package's serial ones.
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := pki.SystemClock{}.Now()
	const n = 1001
	for i := range n {
		r := pki.EnrollmentRequest{ID: fmt.Sprintf("r-%04d", i), TransactionID: fmt.Sprintf("tx-%d", i), Profile: "default",
			Protocol: pki.ProtocolSCEP, Status: pki.RequestPending, Subject: "CN=d", CSR: []byte{0x30}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.CreateRequest(ctx, r, nil, pki.AuditEvent{Type: pki.EventRequestPending, Time: now}); err != nil {
			t.Fatal(err)
		}
		ch := pki.Challenge{ID: fmt.Sprintf("c-%04d", i), Hash: []byte(fmt.Sprintf("h-%04d", i)), Profile: "default",
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated, Time: now}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	for _, tc := range []struct {
		args   []string
		oldest string
	}{
		{[]string{"requests", "list", "--json"}, "r-0000"},
		{[]string{"requests", "list", "--json", "--status", "all"}, "r-0000"},
		{[]string{"challenge", "list", "--json"}, "c-0000"},
	} {
		e, out, errb := testEnv(nil)
		if err := run(ctx, e, append(tc.args, "--data-dir", dir)); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(tc.args, " "), err, errb)
		}
		var list []struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(out.Bytes(), &list); err != nil {
			t.Fatalf("%s: %v", strings.Join(tc.args, " "), err)
		}
		if len(list) != n || list[n-1].ID != tc.oldest {
			t.Errorf("%s: %d listed, the last %+v; want %d, the last %s", strings.Join(tc.args, " "), len(list), list[len(list)-1], n, tc.oldest)
		}
	}
}

// challenge list's table shows each challenge's failed uses (presentations
// for another profile or identity), as README says it lists, so that one
// near its lock is seen (r105 D2: only --json had them).
func TestChallengeListShowsFailedUses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := pki.SystemClock{}.Now()
	for _, id := range []string{"c-misused", "c-clean"} {
		ch := pki.Challenge{ID: id, Hash: []byte("h-" + id), Profile: "default", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated, Time: now}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := st.RecordChallengeMisuse(ctx, []byte("h-c-misused"), now, 3, pki.AuditEvent{Type: pki.EventChallengeMisused, Time: now}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	e, out, errb := testEnv(nil)
	if err := run(ctx, e, []string{"challenge", "list", "--data-dir", dir}); err != nil {
		t.Fatalf("%v\n%s", err, errb)
	}
	fields := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(line)
		fields[f[0]] = f
	}
	if h := fields["ID"]; len(h) < 4 || h[3] != "FAILED" {
		t.Fatalf("header %q, want a FAILED column after STATE\n%s", h, out)
	}
	if got := fields["c-misused"]; len(got) < 4 || got[3] != "2" {
		t.Errorf("c-misused: %q, want 2 failed uses\n%s", got, out)
	}
	if got := fields["c-clean"]; len(got) < 4 || got[3] != "0" {
		t.Errorf("c-clean: %q, want 0 failed uses\n%s", got, out)
	}
}
