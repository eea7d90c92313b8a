package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// A window that ends before it starts is refused, not answered with an
// empty list that looks like a quiet trail.
func TestAuditListRefusesAnEmptyWindow(t *testing.T) {
	for _, tc := range []struct {
		since, until string
	}{
		{"24h", "48h"},
		{"2026-12-01", "2026-11-30"},
		{"2026-11-30T12:00:00Z", "2026-11-30T12:00:00Z"},
	} {
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, []string{"audit", "list", "--since", tc.since, "--until", tc.until, "--data-dir", t.TempDir()})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "is not after --since") {
			t.Errorf("--since %s --until %s: %v, want a usage error naming the window", tc.since, tc.until, err)
		}
	}
}

// A bound before 1970 is refused (r52): the zero time meant no bound, so
// --until 0001-01-01 listed the whole trail.
func TestAuditListRefusesTimesBefore1970(t *testing.T) {
	for _, args := range [][]string{
		{"--until", "0001-01-01"}, {"--until", "0001-01-01T00:00:00Z"}, {"--since", "1969-12-31"},
		{"--until", "1969-12-31T23:59:59Z"}, {"--since", "30000d"},
	} {
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, append([]string{"audit", "list", "--data-dir", t.TempDir()}, args...))
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "from 1970 on") {
			t.Errorf("%v: %v, want a usage error asking for a time from 1970 on", args, err)
		}
	}
}

// A type no event of the trail has and scepter does not write (a
// misspelt one) is refused, exit 2, naming the types, as the API refuses
// it: an empty list alone would read as a quiet trail. A known type
// outside the window, or one only the trail has (another version wrote
// it), is listed.
func TestAuditListRefusesAnUnknownType(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, typ := range []string{pki.EventRevoked, "certificate.archived"} {
		if err := st.AppendAudit(ctx, pki.AuditEvent{Time: at, Type: typ, Actor: "cli:root", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	for _, tc := range []struct {
		args    []string
		refused bool
	}{
		{[]string{"--type", "certificate.revoke"}, true},
		{[]string{"--type", "certificate.revoke", "--json"}, true},
		{[]string{"--type", pki.EventRevoked, "--since", "2030-01-03"}, false},
		{[]string{"--type", pki.EventIssued}, false},
		{[]string{"--type", pki.EventRevoked}, false},
		{[]string{"--type", "certificate.archived"}, false},
	} {
		e, out, errOut := testEnv(nil)
		err := run(ctx, e, append([]string{"audit", "list", "--data-dir", dir}, tc.args...))
		if tc.refused {
			if exitCode(err) != 2 || !strings.Contains(err.Error(), "no such event type") || !strings.Contains(err.Error(), pki.EventIssued) || out.Len() != 0 {
				t.Errorf("%v: %v (exit %d), stdout %q; want exit 2 naming the types and nothing listed", tc.args, err, exitCode(err), out.String())
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v; stderr %q", tc.args, err, errOut.String())
		}
	}
}

// `audit verify` passes a trail whose clock was stepped back, and says
// where, on a warning line naming both records and their times.
func TestAuditVerifyWarnsOfTimeSteppedBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	clock := pkitest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	for _, step := range []time.Duration{0, time.Hour, -2 * time.Hour} {
		clock.Advance(step)
		if err := st.AppendAudit(ctx, pki.AuditEvent{Time: clock.Now(), Type: pki.EventRevoked, Actor: "cli:root"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	e, out, _ := testEnv(nil)
	if err := run(ctx, e, []string{"audit", "verify", "--data-dir", dir}); err != nil {
		t.Fatalf("a clock stepped back fails verify: %v\n%s", err, out)
	}
	for _, want := range []string{
		"WARNING: record 3 (2030-01-02T02:04:05Z) is older than record 2 before it (2030-01-02T04:04:05Z)",
		"OK: 3 record(s) checked", "1 step(s) back of the clock",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}

// A listing that --limit cut says so on stderr, and how to see the rest
// (the restore's steps find what to redo with it: the newest 100 alone
// were taken for all); one that holds everything says nothing more.
func TestAuditListSaysWhenTheLimitCutIt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 5 {
		if err := st.AppendAudit(ctx, pki.AuditEvent{Time: at.Add(time.Duration(i) * time.Second), Type: pki.EventRevoked, Actor: "cli:root", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	for _, tc := range []struct {
		args []string
		cut  bool
	}{
		{[]string{"--limit", "3"}, true},
		{[]string{"--limit", "5"}, false},
		{[]string{"--limit", "0"}, false},
		{[]string{"--limit", "4", "--json"}, true},
		{[]string{"--limit", "2", "--since", "2030-01-02T03:04:08Z"}, false},
	} {
		e, _, errOut := testEnv(nil)
		if err := run(ctx, e, append([]string{"audit", "list", "--data-dir", dir, "--type", pki.EventRevoked}, tc.args...)); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := strings.Contains(errOut.String(), "--limit 0 lists them all"); got != tc.cut {
			t.Errorf("%v: stderr %q, want the cut said: %v", tc.args, errOut.String(), tc.cut)
		}
	}
}

// A flag that keeps one value, given twice, is refused (exit 2, naming
// it): `audit list --type A --type B` listed B's events alone. Flags that
// collect every use (--dns, --revoke) may repeat.
func TestRepeatedFlagRefused(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		refused string
	}{
		{[]string{"audit", "list", "--type", pki.EventRevoked, "--type", "login.failed"}, "--type is given twice"},
		{[]string{"audit", "list", "--type=" + pki.EventRevoked, "-type", "login.failed"}, "--type is given twice"},
		{[]string{"certs", "list", "--profile", "a", "--profile=b"}, "--profile is given twice"},
		{[]string{"audit", "list", "--json", "--json"}, "--json is given twice"},
		{[]string{"agent", "status", "--config", "a.toml", "--config", "b.toml"}, "--config is given twice"},
		{[]string{"challenge", "new", "--dns", "a.example", "--dns", "b.example", "--profile", "none-such"}, ""},
	} {
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, append(tc.args, "--data-dir", t.TempDir()))
		if tc.refused == "" {
			if err != nil && strings.Contains(err.Error(), "given twice") {
				t.Errorf("%v: %v, want the repeated list flag taken", tc.args, err)
			}
			continue
		}
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.refused) {
			t.Errorf("%v: %v (exit %d), want exit 2 with %q", tc.args, err, exitCode(err), tc.refused)
		}
	}
}

// serve, agent and bench keep the flag package's rule, the later use
// overriding the earlier: wrappers compose their command lines from
// defaults and a site's own flags.
func TestRepeatedFlagOverridesInServe(t *testing.T) {
	e, _, _ := testEnv(nil)
	fs, f := newServeFlags(e)
	if err := parseFlags(fs, e, []string{"--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2"}, 0, f.sections()); err != nil {
		t.Fatalf("serve --listen twice: %v", err)
	}
	if f.listen != "127.0.0.1:2" {
		t.Errorf("--listen %q, want the later one", f.listen)
	}
}

// A refusal whose subject a client made long (the trail keeps about 1,000
// characters) does not pad the table's subject column in every row: the
// table cuts it and says so; --json keeps it whole (r74).
func TestAuditListCutsLongSubjects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	long := "CN=" + strings.Repeat("a", 1000)
	for i, subject := range []string{"CN=short", long, ""} {
		ev := pki.AuditEvent{Time: at.Add(time.Duration(i) * time.Second), Type: pki.EventEnrollFailed, Actor: "system", Outcome: "failure",
			Subject: subject, Reason: "unauthorized: challenge password is not valid"}
		if err := st.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	e, out, errOut := testEnv(nil)
	if err := run(ctx, e, []string{"audit", "list", "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if n := len([]rune(line)); n > 250 {
			t.Errorf("a line of %d characters: %.120s…", n, line)
		}
	}
	if !strings.Contains(out.String(), strings.Repeat("a", 60)+"…") {
		t.Errorf("the long subject is not shown cut:\n%s", out)
	}
	if !strings.Contains(errOut.String(), "--json shows them whole") {
		t.Errorf("stderr does not say the table cut a subject: %q", errOut)
	}
	e, out, _ = testEnv(nil)
	if err := run(ctx, e, []string{"audit", "list", "--data-dir", dir, "--json"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), strings.Repeat("a", 1000)) {
		t.Error("--json does not hold the subject whole")
	}
}

// The table's last column shows where the typed reason ends and the
// detail begins, as the console does: run together with a space, "not
// ours request BQJICIJNLGCBTL55" read as one text (r91 D5).
func TestAuditListSeparatesReasonAndDetail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, ev := range []pki.AuditEvent{
		{Type: pki.EventRequestRejected, Reason: "mm2 is not ours", Detail: "request BQJICIJNLGCBTL55"},
		{Type: pki.EventEnrollFailed, Reason: "the request was rejected: unknown device ss1", Detail: "PKIOperation"},
		{Type: pki.EventRevoked, Reason: "keyCompromise"},
		{Type: pki.EventRevoked, Detail: "by key"},
	} {
		ev.Time, ev.Actor, ev.Outcome = at.Add(time.Duration(i)*time.Second), "cli:root", "success"
		if err := st.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	e, out, _ := testEnv(nil)
	if err := run(ctx, e, []string{"audit", "list", "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want a header and 4 rows:\n%s", out)
	}
	if !strings.HasSuffix(lines[0], "REASON · DETAIL") {
		t.Errorf("header %q", lines[0])
	}
	for i, want := range []string{"  by key", "  keyCompromise", "  the request was rejected: unknown device ss1 · PKIOperation", "  mm2 is not ours · request BQJICIJNLGCBTL55"} {
		if !strings.HasSuffix(lines[i+1], want) {
			t.Errorf("row %d %q\nwant it to end %q", i+1, lines[i+1], want)
		}
	}
}
