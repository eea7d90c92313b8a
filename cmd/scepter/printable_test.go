package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

func TestPrintable(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "CN=device-1,O=Example", "CN=device-1,O=Example"},
		{"non-ASCII letters stay", "CN=Grüße 東京", "CN=Grüße 東京"},
		{"ESC sequence", "X\x1b[2J\x1b[1;31mOWNED\x1b[0m", `X\x1b[2J\x1b[1;31mOWNED\x1b[0m`},
		{"newline and carriage return", "a\nforged row\rb", `a\nforged row\rb`},
		{"tab would make a column", "a\tb", `a\tb`},
		{"NUL and BEL", "a\x00b\x07", `a\x00b\a`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"C1 CSI", "a\u009b31mb", `a\u009b31mb`},
		{"C1 NEL", "a\u0085b", `a\u0085b`},
		{"invalid UTF-8", "a\xffb\xc3", `a\xffb\xc3`},
		{"raw C1 byte is invalid UTF-8", "a\x9b31m", `a\x9b31m`},
		{"bidi override", "CN=evil\u202egpj.exe", `CN=evil\u202egpj.exe`},
		{"bidi embeddings and marks", "\u202a\u202b\u202c\u202d\u200e\u200f", `\u202a\u202b\u202c\u202d\u200e\u200f`},
		{"bidi isolates", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := printable(tt.in); got != tt.want {
				t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestPrintableLinesKeepsLineBreaks(t *testing.T) {
	got := printableLines("first \x1b[2J\nsecond\u202e\n\t127.0.0.1:1:\trefused\r")
	if want := "first \\x1b[2J\nsecond\\u202e\n\t127.0.0.1:1:\\trefused\\r"; got != want {
		t.Errorf("printableLines = %q, want %q", got, want)
	}
}

// hostile is what a refused CSR, a requester or a server may put into the
// store: terminal escapes, a forged line, a C1 CSI, a bidi override and
// bytes that are not UTF-8.
const hostile = "X\x1b[2J\x1b[1;31mOWNED\x1b[0m\nforged\tline\u009b31m\u202e\xff"

// Every human-readable listing shows stored values escaped: nothing of a
// subject, a name or a reason reaches the operator's terminal as a control
// character, a C1 control, a bidi control or invalid UTF-8.
func TestListingsEscapeStoredValues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := openStore(ctx, "", dir, false)
	if err != nil {
		t.Fatal(err)
	}
	// Dates relative to the command's clock (pki.SystemClock, moved ahead
	// in a scepter_clockoffset build), as the listings compare with it: a
	// held request an hour from expiring is pending by it.
	now := pki.SystemClock{}.Now().UTC().Truncate(time.Second)
	ev := pki.AuditEvent{Time: now, Type: pki.EventEnrollFailed, Actor: "scep:" + hostile, Outcome: "failure",
		Subject: hostile, Reason: hostile, Detail: hostile, Profile: hostile, SerialHex: hostile}
	if err := st.AppendAudit(ctx, ev); err != nil {
		t.Fatal(err)
	}
	req := pki.EnrollmentRequest{ID: "req1", TransactionID: "tx1", Profile: hostile, Protocol: pki.ProtocolSCEP,
		Status: pki.RequestPending, Subject: "CN=H\x1b[31mELD" + hostile, SANs: []string{hostile}, CSR: []byte{0x30},
		RequesterAddr: hostile, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateRequest(ctx, req, nil, pki.AuditEvent{Time: now, Type: pki.EventRequestPending}); err != nil {
		t.Fatal(err)
	}
	cert := pki.Certificate{SerialHex: "0A", IssuerID: "issuer", Subject: hostile, Issuer: hostile, NotBefore: now,
		NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid, Profile: hostile, Protocol: pki.ProtocolSCEP,
		Source: pki.SourceIssued, CreatedAt: now, DER: []byte{0x30}}
	if err := st.RecordIssuance(ctx, store.Issuance{Certificate: cert, Now: now, Events: []pki.AuditEvent{{Time: now, Type: pki.EventIssued}}}); err != nil {
		t.Fatal(err)
	}
	ch := pki.Challenge{ID: "ch1", Hash: bytes.Repeat([]byte{1}, 32), Profile: hostile, BoundSANs: []string{"dns:" + hostile},
		CreatedAt: now, ExpiresAt: now.Add(time.Hour), CreatedBy: hostile}
	if err := st.CreateChallenge(ctx, ch, pki.AuditEvent{Time: now, Type: pki.EventChallengeCreated}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateESTUser(ctx, pki.ESTUser{Name: "est" + hostile, PasswordHash: "x", Profile: hostile, CreatedAt: now, CreatedBy: hostile},
		pki.AuditEvent{Time: now, Type: pki.EventESTUserAdded}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, pki.User{Name: "user" + hostile, Role: pki.RoleAuditor, PasswordHash: "x", CreatedAt: now, CreatedBy: hostile},
		pki.AuditEvent{Time: now, Type: pki.EventUserAdded}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(ctx, pki.APIToken{ID: "tok1", Name: "token" + hostile, Role: pki.RoleAuditor, Hash: bytes.Repeat([]byte{2}, 32),
		CreatedAt: now, CreatedBy: hostile}, pki.AuditEvent{Time: now, Type: pki.EventTokenCreated}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	for _, args := range [][]string{
		{"audit", "list", "--type", pki.EventEnrollFailed},
		{"requests", "list"},
		{"certs", "list"},
		{"challenge", "list"},
		{"est", "user", "list"},
		{"admin", "user", "list"},
		{"admin", "token", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			e, out, errb := testEnv(nil)
			if err := run(ctx, e, append(args, "--data-dir", dir)); err != nil {
				t.Fatalf("%v (stderr %s)", err, errb)
			}
			if !strings.Contains(out.String(), `\x1b[2J`) {
				t.Errorf("the hostile value is not shown escaped:\n%s", out)
			}
			checkTerminalSafe(t, "stdout", out.String(), 2)
			checkTerminalSafe(t, "stderr", errb.String(), -1)
		})
	}
}

// checkTerminalSafe fails when s holds a byte a terminal acts on (a C0
// control but newline, DEL), a C1 control, a bidi control or invalid
// UTF-8; with lines >= 0, when it does not have that many lines.
func checkTerminalSafe(t *testing.T, what, s string, lines int) {
	t.Helper()
	for i, r := range s {
		switch {
		case r == '\n':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			t.Errorf("%s: control %U at %d:\n%q", what, r, i, s)
		case r == '\u200e' || r == '\u200f' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069'):
			t.Errorf("%s: bidi control %U at %d:\n%q", what, r, i, s)
		}
	}
	if !utf8.ValidString(s) {
		t.Errorf("%s: invalid UTF-8:\n%q", what, s)
	}
	if lines >= 0 && strings.Count(s, "\n") != lines {
		t.Errorf("%s: %d lines, want %d (a header and one row):\n%s", what, strings.Count(s, "\n"), lines, s)
	}
}
