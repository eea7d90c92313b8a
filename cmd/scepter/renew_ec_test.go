package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// An EC certificate renews over SCEP without a challenge, as the README
// says: the server answers an EC signer in an envelope keyed from the
// request's challengePassword, and `scepter renew` makes a random one for
// that when given none. As a RenewalReq and as a PKCSReq signed by the
// certificate, keeping the key and with a new one.
func TestRenewECWithoutChallenge(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"100%\"\n")
	for _, tt := range []struct {
		name  string
		extra []string
	}{
		{"RenewalReq", nil},
		{"RenewalReq --rekey", []string{"--rekey"}},
		{"PKCSReq", []string{"--pkcsreq"}},
		{"PKCSReq --rekey", []string{"--pkcsreq", "--rekey"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			certPath, keyPath := filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
			if out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=ec-renew", "--key-type", "p384",
				"--ca-fingerprint", s.fingerprint, "--out", certPath, "--key-out", keyPath); err != nil {
				t.Fatalf("enroll: %v\n%s", err, out)
			}
			oldKey := loadKey(t, keyPath).Public()
			newCert, newKey := filepath.Join(d, "new.pem"), filepath.Join(d, "new-key.pem")
			args := append([]string{"renew", "--url", s.scepURL, "--ca-fingerprint", s.fingerprint, "--cert", certPath, "--key", keyPath,
				"--out", newCert, "--key-out", newKey}, tt.extra...)
			out, err := runCLI(args...)
			if err != nil {
				t.Fatalf("renew without a challenge: %v\n%s", err, out)
			}
			got := certKey(t, newCert)
			if !pki.SamePublicKey(got, loadKey(t, newKey).Public()) {
				t.Error("the renewed certificate is not for the key written beside it")
			}
			if rekey := len(tt.extra) > 0 && tt.extra[len(tt.extra)-1] == "--rekey"; rekey == pki.SamePublicKey(got, oldKey) {
				t.Errorf("rekey %v, but the renewed key is the old one: %v", rekey, !rekey)
			}
			if strings.Contains(strings.ToLower(strings.ReplaceAll(out, d, "")), "challenge") {
				t.Errorf("renew talks of a challenge it was not given:\n%s", out)
			}
		})
	}
}

// A renewal refused for its time is told so, with or without a challenge
// made up for the envelope: a PKCSReq signed by the certificate is tried
// as a renewal first, and the server answers with the renewal's reason,
// not the made-up challenge's.
func TestRenewECTooEarlyGivesTheRenewalsReason(t *testing.T) {
	s := startServe(t, "[profiles.default]\nrenewal_window = \"1%\"\n")
	d := t.TempDir()
	certPath, keyPath := filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
	if out, err := runCLI("enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=ec-early", "--key-type", "p256",
		"--ca-fingerprint", s.fingerprint, "--out", certPath, "--key-out", keyPath); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	for _, extra := range [][]string{nil, {"--pkcsreq"}, {"--rekey"}, {"--pkcsreq", "--rekey"}} {
		args := append([]string{"renew", "--url", s.scepURL, "--ca-fingerprint", s.fingerprint, "--cert", certPath, "--key", keyPath,
			"--out", filepath.Join(d, "new.pem"), "--key-out", filepath.Join(d, "new-key.pem")}, extra...)
		out, err := runCLI(args...)
		if err == nil || !strings.Contains(err.Error(), "badTime") || !strings.Contains(err.Error(), "renewal of this certificate opens at") {
			t.Errorf("renew %v before its window: %v, want the renewal's badTime\n%s", extra, err, out)
		}
	}
}

// An EC renewal held for approval is collected by running the same command
// again: each run makes its own challenge for the envelope, and the hint
// asks for no challenge.
func TestRenewECHeldWithoutChallenge(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\nrenewal_window = \"100%\"\n")
	d := t.TempDir()
	certPath, keyPath := filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
	enroll := []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--subject", "CN=ec-held", "--key-type", "p256",
		"--ca-fingerprint", s.fingerprint, "--out", certPath, "--key-out", keyPath}
	s.expectHeld(t, "enroll", enroll)
	s.approve(t, s.pending(t)[0])
	if out, err := runCLI(enroll...); err != nil {
		t.Fatalf("collect the enrollment: %v\n%s", err, out)
	}

	renew := []string{"renew", "--url", s.scepURL, "--ca-fingerprint", s.fingerprint, "--cert", certPath, "--key", keyPath, "--rekey",
		"--out", filepath.Join(d, "new.pem"), "--key-out", filepath.Join(d, "new-key.pem")}
	said := s.expectHeld(t, "renew", renew)
	if strings.Contains(strings.ReplaceAll(said, d, ""), "challenge") {
		t.Errorf("the hint asks for a challenge renew was not given: %s", said)
	}
	s.approve(t, s.pending(t)[0])
	if out, err := runCLI(renew...); err != nil {
		t.Fatalf("collect the renewal: %v\n%s", err, out)
	}
	if !pki.SamePublicKey(certKey(t, filepath.Join(d, "new.pem")), loadKey(t, filepath.Join(d, "new-key.pem")).Public()) {
		t.Error("the collected certificate is not for the new key")
	}
}
