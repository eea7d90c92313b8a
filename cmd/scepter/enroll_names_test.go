package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// SCEP `scepter enroll` writes a certificate whose names the server chose
// (a profile may fix part of the subject or add a SAN; micromdm and
// step-ca drop a UID) and says on stderr which names it asked for and
// which it got, as `est enroll` does (r117 D4); names issued as asked
// bring no warning.
func TestEnrollWarnsOfOtherNames(t *testing.T) {
	s := startServe(t, "[profiles.default]\nsubject_fixed = { O = \"Acme\" }\nsubject_allowed = [\"CN\"]\nsan_fixed = [\"dns:vpn.acme.example\"]\n")
	const warning = "warning: the server issued other names than the request asked for: "
	for _, tt := range []struct {
		name, subject, dns string
		want               string // on stderr; "" for no warning
	}{
		{"as asked", "CN=same,O=Acme", "vpn.acme.example", ""},
		{"a subject attribute added", "CN=asked", "vpn.acme.example", warning + `subject "CN=asked,O=Acme", not "CN=asked"`},
		{"a SAN added", "CN=nosan,O=Acme", "", warning},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			args := []string{"enroll", "--url", s.scepURL, "--ca-fingerprint", s.fingerprint, "--challenge", "test", "--subject", tt.subject,
				"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")}
			if tt.dns != "" {
				args = append(args, "--dns", tt.dns)
			}
			e, stdout, stderr := testEnv(nil)
			if err := run(context.Background(), e, args); err != nil {
				t.Fatalf("enroll: %v\n%s%s", err, stdout, stderr)
			}
			switch {
			case tt.want == "" && strings.Contains(stderr.String(), warning):
				t.Errorf("a warning for names issued as asked: %s", stderr)
			case tt.want != "" && !strings.Contains(stderr.String(), tt.want):
				t.Errorf("stderr %q does not say %q", stderr, tt.want)
			}
		})
	}
}
