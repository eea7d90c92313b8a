package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lifecycleConfig: renewal allowed at any time in the default profile (so a
// fresh certificate can be renewed in a test) and a profile that needs
// approval.
const lifecycleConfig = `
[profiles.default]
renewal_window = "100%"

[profiles.approval]
approval = true
`

// webhookConfig adds a profile whose challenges a webhook decides: the
// server refuses to start with it unless --webhook-url is set.
const webhookConfig = lifecycleConfig + `
[profiles.hook]
challenge = "webhook"
`

// TestRenewalByRealClients: micromdm's scepclient renews by RenewalReq when
// run again with its certificate; our client renews by RenewalReq and by a
// PKCSReq signed with the old certificate (the Apple/certmonger way).
func TestRenewalByRealClients(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	writeFile(t, cfg, lifecycleConfig)
	s := startServer(t, serverOpts{prepared: true, challenge: "renew-secret", args: []string{"--config", cfg, "--allow-insecure-des"}})

	t.Run("micromdm scepclient RenewalReq", func(t *testing.T) {
		need(t, "scepclient")
		raFP := fingerprintHex(readCert(t, s.CAFile("ra.crt")))
		dir := t.TempDir()
		if r := scepclient(t, dir, s.URL, s.Challenge, "mm-renew", "-ca-fingerprint", raFP); r.err != nil {
			t.Fatalf("first enrollment:\n%s", r)
		}
		first := s.Verify(filepath.Join(dir, "cert.pem"))
		// Run again with the certificate in place: scepclient sends RenewalReq.
		tp := startTap(t, s.Addr)
		if r := scepclient(t, dir, tp.Base()+"/scep", s.Challenge, "mm-renew", "-ca-fingerprint", raFP); r.err != nil {
			t.Fatalf("renewal:\n%s", r)
		}
		second := s.Verify(filepath.Join(dir, "cert.pem"))
		if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Fatal("scepclient kept the old certificate")
		}
		expectWire(t, tp, wantWire{method: "POST"})
		s.ExpectRecorded(second)
	})

	t.Run("strongSwan pki RenewalReq with a new key", func(t *testing.T) {
		need(t, "pki")
		certs := t.TempDir()
		if r := pkiCmd(t, certs, "--scepca", "--url", s.URL, "--caout", filepath.Join(certs, "ca.pem"),
			"--raout", filepath.Join(certs, "ra.pem"), "--outform", "pem"); r.err != nil {
			t.Fatalf("pki --scepca:\n%s", r)
		}
		scepArgs := func(key string, extra ...string) []string {
			return append([]string{"--scep", "--url", s.URL, "--in", key, "--dn", "C=US, O=Acme, CN=ss-renew", "--san", "ss-renew.example.com",
				"--cacert-enc", filepath.Join(certs, "ra.pem"), "--cacert-sig", filepath.Join(certs, "ca-1.pem"),
				"--cacert", filepath.Join(certs, "ca.pem"), "--interval", "1", "--maxpolltime", "20", "--outform", "pem"}, extra...)
		}
		oldDir, newDir := t.TempDir(), t.TempDir()
		oldKey := pkiGenKey(t, oldDir, "2048")
		r := pkiCmd(t, oldDir, scepArgs(oldKey, "--password", s.Challenge)...)
		if r.err != nil {
			t.Fatalf("pki --scep:\n%s", r)
		}
		oldCert := filepath.Join(oldDir, "cert.pem")
		writeFile(t, oldCert, r.stdout)
		first := s.Verify(oldCert)
		newKey := pkiGenKey(t, newDir, "2048")
		r = pkiCmd(t, newDir, scepArgs(newKey, "--cert", oldCert, "--key", oldKey)...)
		if r.err != nil {
			t.Fatalf("pki --scep renewal:\n%s", r)
		}
		newCert := filepath.Join(newDir, "cert.pem")
		writeFile(t, newCert, r.stdout)
		second := s.Verify(newCert)
		expectKeyMatches(t, second, newKey)
		if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Fatal("no new certificate")
		}
		s.ExpectRecorded(second)
	})

	t.Run("scepter renew", func(t *testing.T) {
		dir := t.TempDir()
		if r := enroll(t, dir, s.URL, s.Challenge, "CN=renew-me,O=Acme", "--dns", "renew-me.example"); r.err != nil {
			t.Fatalf("enroll:\n%s", r)
		}
		old := s.Verify(filepath.Join(dir, "cert.pem"))
		for _, mode := range [][]string{{"--rekey"}, {"--pkcsreq"}} {
			out := filepath.Join(dir, "renewed"+mode[0]+".pem")
			r := run(t, runOpts{dir: dir}, bin(t), append([]string{"renew", "--url", s.URL, "--cert", filepath.Join(dir, "cert.pem"),
				"--key", filepath.Join(dir, "key.pem"), "--out", out, "--key-out", out + ".key"}, mode...)...)
			if r.err != nil {
				t.Fatalf("renew %v:\n%s", mode, r)
			}
			c := s.Verify(out)
			if c.Subject.String() != old.Subject.String() || len(c.DNSNames) != 1 || c.DNSNames[0] != "renew-me.example" {
				t.Errorf("renewed %s %v, want the old names", c.Subject, c.DNSNames)
			}
			s.ExpectRecorded(c)
		}
	})
}

// TestPendingApproval: a profile that needs approval answers PENDING; the
// client polls; `scepter requests approve` releases the certificate;
// `requests reject` ends in a FAILURE with the reason.
func TestPendingApproval(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	writeFile(t, cfg, lifecycleConfig)
	// The static challenge belongs to one profile: here, the one tested.
	s := startServer(t, serverOpts{prepared: true, challenge: "pending-secret", args: []string{"--config", cfg, "--challenge-profile", "approval"}})
	url := s.Base + "/scep/approval"

	pendingIDs := func() []string {
		r := s.MustRun("requests", "list", "--json", "--config", cfg, "--data-dir", s.DataDir)
		var reqs []struct{ ID, Status, Profile, Subject string }
		if err := json.Unmarshal([]byte(r.stdout), &reqs); err != nil {
			t.Fatalf("requests list --json: %v\n%s", err, r.stdout)
		}
		var ids []string
		for _, q := range reqs {
			if q.Status == "pending" && q.Profile == "approval" {
				ids = append(ids, q.ID)
			}
		}
		return ids
	}

	// approvedWhilePolling enrolls with polling, approves the request it
	// leaves pending, and checks the certificate the client then collects.
	approvedWhilePolling := func(subject string, extra ...string) {
		t.Helper()
		dir := t.TempDir()
		done := make(chan result, 1)
		go func() {
			done <- enroll(t, dir, url, s.Challenge, subject, append([]string{"--poll-interval", "1s", "--max-wait", "60s"}, extra...)...)
		}()
		var ids []string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			if ids = pendingIDs(); len(ids) > 0 {
				break
			}
		}
		if len(ids) != 1 {
			t.Fatalf("%s: pending requests %v", subject, ids)
		}
		s.MustRun("requests", "approve", ids[0], "--config", cfg, "--data-dir", s.DataDir)
		if res := <-done; res.err != nil {
			t.Fatalf("%s: enroll with polling:\n%s", subject, res)
		}
		s.ExpectRecorded(s.Verify(filepath.Join(dir, "cert.pem")))
	}
	approvedWhilePolling("CN=needs-approval,O=Acme")
	// An EC key polls by sending its PKCSReq again: the reply's envelope
	// is keyed from the challenge, which a CertPoll does not carry.
	approvedWhilePolling("CN=needs-approval-ec,O=Acme", "--key-type", "p256")

	// Rejection: the first attempt returns pending (and keeps the key), the
	// operator rejects, the second attempt with the same key gets the reason.
	dir2 := t.TempDir()
	r := enroll(t, dir2, url, s.Challenge, "CN=will-be-rejected,O=Acme")
	expectContains(t, "pending enrollment", expectFailed(t, r, "enrollment pending approval"), "pending")
	ids := pendingIDs()
	if len(ids) != 1 {
		t.Fatalf("pending requests: %v", ids)
	}
	s.MustRun("requests", "reject", ids[0], "--reason", "unknown device", "--config", cfg, "--data-dir", s.DataDir)
	r = enroll(t, dir2, url, s.Challenge, "CN=will-be-rejected,O=Acme", "--key", filepath.Join(dir2, "key.pem"))
	expectContains(t, "rejected enrollment", expectFailed(t, r, "rejected request"), "badRequest", "unknown device")
}

// TestWebhookChallenge: a real HTTP webhook on 127.0.0.1 decides.
func TestWebhookChallenge(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		seen = append(seen, body)
		mu.Unlock()
		allow := body["challenge"] == "let-me-in"
		json.NewEncoder(w).Encode(map[string]any{"allow": allow, "reason": "not on the device list"})
	}))
	defer hook.Close()
	cfg := filepath.Join(t.TempDir(), "scepter.toml")
	writeFile(t, cfg, webhookConfig)
	s := startServer(t, serverOpts{prepared: true, challenge: "static-secret", args: []string{"--config", cfg, "--webhook-url", hook.URL + "/check"}})

	dir := t.TempDir()
	if r := enroll(t, dir, s.Base+"/scep/hook", "let-me-in", "CN=hooked,O=Acme", "--dns", "hooked.example"); r.err != nil {
		t.Fatalf("allowed by the webhook:\n%s", r)
	}
	s.ExpectRecorded(s.Verify(filepath.Join(dir, "cert.pem")))
	r := enroll(t, t.TempDir(), s.Base+"/scep/hook", "static-secret", "CN=not-hooked,O=Acme")
	expectContains(t, "refused by the webhook", expectFailed(t, r, "webhook deny"), "badRequest", "not on the device list")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0]["subject"] != "CN=hooked,O=Acme" || seen[0]["profile"] != "hook" {
		t.Errorf("webhook saw %v", seen)
	}
}

// TestECEnrollment: an EC key enrolls end to end, the certificate arriving
// in a password-based envelope keyed from the challenge. The second P-256
// device's reply is wrapped under the key the server derived for the first.
func TestECEnrollment(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "ec-secret"})
	for i, kt := range []string{"p256", "p384", "p256"} {
		dir := t.TempDir()
		if r := enroll(t, dir, s.URL, s.Challenge, fmt.Sprintf("CN=ec-%s-%d,O=Acme", kt, i), "--key-type", kt); r.err != nil {
			t.Fatalf("%s:\n%s", kt, r)
		}
		c := s.Verify(filepath.Join(dir, "cert.pem"))
		if got := keyDesc(c.PublicKey); got != kt {
			t.Errorf("key %s, want %s", got, kt)
		}
		expectKeyMatches(t, c, filepath.Join(dir, "key.pem"))
		s.ExpectRecorded(c)
	}
}

// TestCARollover: `scepter ca rollover` beside a running server makes it
// advertise and serve GetNextCACert without a restart.
func TestCARollover(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{prepared: true, challenge: "roll-secret", args: []string{"--ca-reload-interval", "200ms"}})
	s.MustRun("ca", "rollover", "--switch-in", "720h", "--data-dir", s.DataDir)
	var caps []byte
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, caps, _ = httpGet(s.URL + "?operation=GetCACaps")
		if strings.Contains(string(caps), "GetNextCACert") {
			break
		}
	}
	if !strings.Contains(string(caps), "GetNextCACert") {
		t.Fatalf("GetNextCACert not advertised after a rollover:\n%s\n%s", caps, s.Output())
	}
	resp, err := http.Get(s.URL + "?operation=GetNextCACert")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-x509-next-ca-cert" {
		t.Errorf("GetNextCACert: HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Enrollment still works, from the current CA.
	dir := t.TempDir()
	if r := enroll(t, dir, s.URL, s.Challenge, "CN=during-rollover,O=Acme"); r.err != nil {
		t.Fatalf("enroll during a rollover:\n%s", r)
	}
	s.ExpectRecorded(s.Verify(filepath.Join(dir, "cert.pem")))
}
