package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/agent"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// The example agent config loads (the serve config test skips it), and the
// example systemd units start the agent with it.
func TestAgentExampleConfig(t *testing.T) {
	cfg, err := agent.LoadConfig("../../examples/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 3 {
		t.Fatalf("%d certificates", len(cfg.Certificates))
	}
	var protocols []string
	for _, c := range cfg.Certificates {
		protocols = append(protocols, c.Protocol)
	}
	if strings.Join(protocols, ",") != "scep,est,est" || !cfg.Certificates[2].Combined() || cfg.Certificates[1].RenewBefore != 7*24*time.Hour {
		t.Errorf("example config: %+v", cfg.Certificates)
	}
	for file, want := range map[string]string{
		"scepter-agent.service":      "ExecStart=/usr/local/bin/scepter agent --config /etc/scepter/agent.toml\n",
		"scepter-agent-once.service": "ExecStart=/usr/local/bin/scepter agent --config /etc/scepter/agent.toml --once\n",
		"scepter-agent-once.timer":   "OnCalendar=",
	} {
		b, err := os.ReadFile(filepath.Join("../../examples", file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("examples/%s does not say %q (%v)", file, want, err)
		}
	}
}

func TestAgentUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[certificate]]\nname = \"x\"\n"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"agent"}, "--config is required"},
		{[]string{"agent", "status"}, "--config is required"},
		{[]string{"agent", "--config", filepath.Join(dir, "missing.toml")}, "missing.toml"},
		{[]string{"agent", "--config", bad}, "protocol is required"},
		{[]string{"agent", "--config", bad, "extra"}, "unexpected arguments: extra"},
		{[]string{"agent", "--frobnicate"}, "frobnicate"},
		{[]string{"agent", "--config", "../../examples/agent.toml", "--log-level", "loud"}, "--log-level"},
		{[]string{"agent", "--config", "../../examples/agent.toml", "--log-format", "xml"}, "--log-format"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			e, _, _ := testEnv(nil)
			err := run(context.Background(), e, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if exitCode(err) != 2 {
				t.Errorf("exit code %d, want 2", exitCode(err))
			}
		})
	}
	for _, args := range [][]string{{"agent", "-h"}, {"agent", "status", "--help"}} {
		e, out, _ := testEnv(nil)
		if err := run(context.Background(), e, args); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "--config") {
			t.Errorf("%v: err %v, stdout %q", args, err, out.String())
		}
	}
}

// agentMachine is a key and certificate on disk with an agent config for
// them. The command's clock is pki.SystemClock, so the certificate's times
// are counted from it (moved in a scepter_clockoffset build).
func agentMachine(t *testing.T, notBefore time.Time, life time.Duration) (dir, config string, cert *x509.Certificate) {
	t.Helper()
	dir = t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root"}, NotBefore: notBefore.Add(-time.Hour),
		NotAfter: notBefore.Add(10 * life), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0xabc123), Subject: pkix.Name{CommonName: "agent-cli"}, NotBefore: notBefore, NotAfter: notBefore.Add(life)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	if err := keys.WriteKeyFile(filepath.Join(dir, "key.pem"), key); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteCertFile(filepath.Join(dir, "cert.pem"), cert); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ca.Raw)
	config = filepath.Join(dir, "agent.toml")
	text := fmt.Sprintf("[[certificate]]\nname = \"cli\"\nprotocol = \"est\"\nurl = \"https://127.0.0.1:1\"\nca_fingerprint = \"sha256:%s\"\nkey_path = \"key.pem\"\ncert_path = \"cert.pem\"\npost_renew = \"echo renewed >> post.log\"\n",
		hex.EncodeToString(sum[:]))
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, config, cert
}

func TestAgentStatusCommand(t *testing.T) {
	dir, config, cert := agentMachine(t, pki.SystemClock{}.Now().Add(-time.Hour), 90*24*time.Hour)
	e, out, _ := testEnv(nil)
	if err := run(context.Background(), e, []string{"agent", "status", "--config", config}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"cli (est, https://127.0.0.1:1)", "subject:       CN=agent-cli", "serial:        abc123",
		"expires:       " + cert.NotAfter.UTC().Format("2006-01-02 15:04:05Z"), "next renewal:  " + agent.RenewalPoint(cert, 0).UTC().Format("2006-01-02 15:04:05Z")} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("status does not say %q:\n%s", w, out)
		}
	}
	// The config file may come from the environment, like every flag.
	e, out, _ = testEnv(map[string]string{"SCEPTER_CONFIG": config})
	if err := run(context.Background(), e, []string{"agent", "status"}); err != nil || !strings.Contains(out.String(), "CN=agent-cli") {
		t.Errorf("SCEPTER_CONFIG: err %v\n%s", err, out)
	}

	os.Remove(filepath.Join(dir, "cert.pem"))
	e, out, _ = testEnv(nil)
	err := run(context.Background(), e, []string{"agent", "status", "--config", config})
	if err == nil || exitCode(err) != 1 || !strings.Contains(out.String(), "certificate file "+filepath.Join(dir, "cert.pem")+" is missing") {
		t.Errorf("status with the certificate missing: err %v (exit %d)\n%s", err, exitCode(err), out)
	}
}

// Nothing is due: --once exits 0 at once, having asked no server.
func TestAgentOnceNothingDue(t *testing.T) {
	dir, config, _ := agentMachine(t, pki.SystemClock{}.Now().Add(-time.Hour), 90*24*time.Hour)
	e, _, errb := testEnv(nil)
	if err := run(context.Background(), e, []string{"agent", "--once", "--config", config, "--log-format", "json"}); err != nil {
		t.Fatalf("%v\n%s", err, errb)
	}
	if !strings.Contains(errb.String(), `"msg":"not due for renewal"`) {
		t.Errorf("log:\n%s", errb)
	}
	if _, err := os.Stat(filepath.Join(dir, "post.log")); !os.IsNotExist(err) {
		t.Error("post_renew ran")
	}
}

// A due renewal whose server cannot be reached fails --once with exit 1.
func TestAgentOnceFailedRenewal(t *testing.T) {
	_, config, _ := agentMachine(t, pki.SystemClock{}.Now().Add(-80*24*time.Hour), 90*24*time.Hour)
	b, _ := os.ReadFile(config)
	os.WriteFile(config, append([]byte("once_attempts = 1\n"), b...), 0o600)
	e, _, errb := testEnv(nil)
	err := run(context.Background(), e, []string{"agent", "--once", "--config", config})
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "cli") {
		t.Fatalf("err = %v (exit %d)\n%s", err, exitCode(err), errb)
	}
	if !strings.Contains(errb.String(), "127.0.0.1:1") {
		t.Errorf("the log does not say what failed:\n%s", errb)
	}
}

// A file the agent would write into a directory that does not exist is a
// configuration error (exit 2), found before any server is asked, for
// status as for a run.
func TestAgentRefusesAMissingOutputDirectory(t *testing.T) {
	dir, config, _ := agentMachine(t, pki.SystemClock{}.Now().Add(-80*24*time.Hour), 90*24*time.Hour)
	b, _ := os.ReadFile(config)
	if err := os.WriteFile(config, append(b, "chain_path = \"missing/chain.pem\"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	want := `certificate 1 ("cli"): chain_path ` + filepath.Join(dir, "missing", "chain.pem") + ": its directory " + filepath.Join(dir, "missing") + " does not exist"
	for _, args := range [][]string{{"agent", "--once", "--config", config}, {"agent", "status", "--config", config}} {
		e, _, errb := testEnv(nil)
		err := run(context.Background(), e, args)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: err = %v (exit %d), want exit 2 and %q\n%s", args, err, exitCode(err), want, errb)
		}
	}
}

// A challenge_file that is missing, empty or blank is a configuration
// error (exit 2) at start, for status as for a run, found before the
// certificate comes due: status said nothing, and a run found it only at
// the renewal point, retrying it as a server failure.
func TestAgentRefusesAnUnusableChallengeFile(t *testing.T) {
	dir, config, _ := agentMachine(t, pki.SystemClock{}.Now().Add(-time.Hour), 90*24*time.Hour)
	b, _ := os.ReadFile(config)
	text := strings.Replace(string(b), `protocol = "est"`, `protocol = "scep"`, 1)
	text = strings.Replace(text, `url = "https://127.0.0.1:1"`, `url = "http://127.0.0.1:1/scep"`, 1)
	if err := os.WriteFile(config, []byte(text+"challenge_file = \"ch.txt\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ch := filepath.Join(dir, "ch.txt")
	for _, tt := range []struct {
		name, content string // "-": no file
		want          string
	}{
		{"missing", "-", "challenge_file: open " + ch},
		{"empty", "", "challenge_file " + ch + " is empty"},
		{"blank", "\xef\xbb\xbf  \n", "challenge_file " + ch + " is empty"},
	} {
		os.Remove(ch)
		if tt.content != "-" {
			if err := os.WriteFile(ch, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for _, args := range [][]string{{"agent", "--once", "--config", config}, {"agent", "status", "--config", config}} {
			e, _, errb := testEnv(nil)
			err := run(context.Background(), e, args)
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), `certificate 1 ("cli"): `+tt.want) {
				t.Errorf("%s: %v: err = %v (exit %d), want exit 2 and %q\n%s", tt.name, args, err, exitCode(err), tt.want, errb)
			}
		}
	}
	if err := os.WriteFile(ch, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, out, _ := testEnv(nil)
	if err := run(context.Background(), e, []string{"agent", "status", "--config", config}); err != nil {
		t.Errorf("with the challenge written: %v\n%s", err, out)
	}
}

// A bad boolean for the agent, in the environment or on the command line,
// says what it takes, as serve's does; it said only "parse error" (r88 D8).
func TestAgentBadBooleanSaysWhatItTakes(t *testing.T) {
	e, _, _ := testEnv(map[string]string{"SCEPTER_ONCE": "yes"})
	err := run(context.Background(), e, []string{"agent", "--config", "../../examples/agent.toml"})
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), `SCEPTER_ONCE="yes": parse error; want true or false`) {
		t.Errorf("err = %v (exit %d)", err, exitCode(err))
	}
	e, _, _ = testEnv(nil)
	err = run(context.Background(), e, []string{"agent", "--once=yes", "--config", "../../examples/agent.toml"})
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "want true or false") {
		t.Errorf("--once=yes: err = %v (exit %d)", err, exitCode(err))
	}
}

// An expired certificate fails `agent status` (exit 1), for a monitoring
// check of its exit status, and says how to mend it.
func TestAgentStatusFailsForAnExpiredCertificate(t *testing.T) {
	_, config, _ := agentMachine(t, pki.SystemClock{}.Now().Add(-91*24*time.Hour), 90*24*time.Hour)
	e, out, _ := testEnv(nil)
	err := run(context.Background(), e, []string{"agent", "status", "--config", config})
	if err == nil || exitCode(err) != 1 || !strings.Contains(out.String(), "the certificate has expired") || !strings.Contains(err.Error(), "1 of 1 certificates have a problem") {
		t.Errorf("status of an expired certificate: err %v (exit %d)\n%s", err, exitCode(err), out)
	}
}
