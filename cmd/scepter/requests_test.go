package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// r78 D5: requests approve and reject say what is wrong in plain words, an
// unknown ID quoted (escaped when it is not printable), as 'no EST user
// "x"' does, without the internal code ("not_found: no request nosuch");
// a blank ID is a usage error (exit 2), as an empty serial is.
func TestRequestsDecisionRefusals(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\n")
	d := t.TempDir()
	s.expectHeld(t, "enroll", []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=held-once", "--key-type", "p256",
		"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")})
	held := s.pending(t)[0]
	s.approve(t, held)
	tests := []struct {
		name string
		args []string
		exit int
		want string // the whole message
	}{
		{"approve unknown", []string{"approve", "nosuch"}, 1, `no request "nosuch": 'scepter requests list --status all' shows the IDs`},
		{"reject unknown", []string{"reject", "nosuch", "--reason", "x"}, 1, `no request "nosuch": 'scepter requests list --status all' shows the IDs`},
		{"approve unprintable", []string{"approve", "no\x1b[2Jsuch"}, 1, `no request "no\x1b[2Jsuch": 'scepter requests list --status all' shows the IDs`},
		{"approve empty", []string{"approve", ""}, 2, `request ID "" is blank: give one that 'scepter requests list' shows`},
		{"reject blank", []string{"reject", " ", "--reason", "x"}, 2, `request ID " " is blank: give one that 'scepter requests list' shows`},
		// r80: an ID of any length was printed back whole.
		{"approve huge", []string{"approve", strings.Repeat("a", 100000)}, 1, `no request "` + strings.Repeat("a", 80) + `… (100000 bytes)": 'scepter requests list --status all' shows the IDs`},
		{"approve decided", []string{"approve", held}, 1, "request " + held + " is issued, not pending"},
		{"reject decided", []string{"reject", held, "--reason", "x"}, 1, "request " + held + " is issued, not pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(append(append([]string{"requests"}, tt.args...), "--data-dir", s.dataDir)...)
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			shown := printableLines(err.Error())
			if exitCode(err) != tt.exit || shown != strings.ReplaceAll(tt.want, "\x1b", `\x1b`) {
				t.Errorf("exit %d, %q; want exit %d, %q", exitCode(err), shown, tt.exit, tt.want)
			}
		})
	}
}
