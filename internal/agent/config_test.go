package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fp = "sha256:3f1c0000000000000000000000000000000000000000000000000000000000aa"

func TestParseConfig(t *testing.T) {
	text := `
retry_initial = "30s"
retry_max = "2h"
check_interval = "6h"
once_attempts = 5
renew_timeout = "45s"

[[certificate]]
name = "web"
protocol = "scep"
url = "http://ca.example:8080/scep/web"
ca_fingerprint = "` + fp + `"
key_path = "tls/key.pem"
cert_path = "/etc/ssl/web.pem"
chain_path = "/etc/ssl/chain.pem"
post_renew = "systemctl reload nginx"

[[certificate]]
name = "haproxy"
protocol = "EST"
url = "https://ca.example:8443/vpn"
ca_fingerprint = "3F:1C:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:AA"
key_path = "/etc/haproxy/site.pem"
cert_path = "/etc/haproxy/site.pem"
renew_before = "7d"
rekey = false
post_renew_timeout = "30s"

[[certificate]]
name = "ec.scep"
protocol = "scep"
url = "https://ca.example/scep"
ca_fingerprint = "` + fp + `"
key_path = "/k"
cert_path = "/c"
key_type = "p384"
challenge_file = "challenge.txt"
`
	cfg, err := ParseConfig([]byte(text), "/etc/scepter")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RetryInitial != 30*time.Second || cfg.RetryMax != 2*time.Hour || cfg.CheckInterval != 6*time.Hour || cfg.OnceAttempts != 5 ||
		cfg.RenewTimeout != 45*time.Second {
		t.Errorf("settings: %+v", cfg)
	}
	if len(cfg.Certificates) != 3 {
		t.Fatalf("%d certificates", len(cfg.Certificates))
	}
	web, hap, ec := cfg.Certificates[0], cfg.Certificates[1], cfg.Certificates[2]
	if web.KeyPath != "/etc/scepter/tls/key.pem" || web.CertPath != "/etc/ssl/web.pem" || web.ChainPath != "/etc/ssl/chain.pem" {
		t.Errorf("paths are not resolved against the config's directory: %+v", web)
	}
	if !web.Rekey || web.KeyType != "" || web.RenewBefore != 0 || web.PostRenewTimeout != DefaultPostRenewTimeout || web.PostRenew != "systemctl reload nginx" || web.Combined() {
		t.Errorf("defaults: %+v", web)
	}
	if hap.Protocol != ProtocolEST || !hap.Combined() || hap.Rekey || hap.RenewBefore != 7*24*time.Hour || hap.PostRenewTimeout != 30*time.Second {
		t.Errorf("haproxy: %+v", hap)
	}
	if ec.KeyType != "p384" || ec.ChallengeFile != "/etc/scepter/challenge.txt" {
		t.Errorf("ec: %+v", ec)
	}

	// Defaults of the settings.
	cfg, err = ParseConfig([]byte("[[certificate]]\nname = \"a\"\nprotocol = \"est\"\nurl = \"https://h\"\nca_fingerprint = \""+fp+"\"\nkey_path = \"/k\"\ncert_path = \"/c\"\n"), "/")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RetryInitial != DefaultRetryInitial || cfg.RetryMax != DefaultRetryMax || cfg.CheckInterval != DefaultCheckInterval || cfg.OnceAttempts != DefaultOnceAttempts ||
		cfg.RenewTimeout != DefaultRenewTimeout {
		t.Errorf("default settings: %+v", cfg)
	}
}

func TestParseConfigErrors(t *testing.T) {
	good := map[string]string{
		"name": `"web"`, "protocol": `"scep"`, "url": `"http://ca.example/scep"`, "ca_fingerprint": `"` + fp + `"`,
		"key_path": `"/k.pem"`, "cert_path": `"/c.pem"`,
	}
	cert := func(change map[string]string) string {
		var b strings.Builder
		b.WriteString("[[certificate]]\n")
		for _, k := range []string{"name", "protocol", "url", "ca_fingerprint", "key_path", "cert_path"} {
			v, ok := change[k]
			if !ok {
				v = good[k]
			}
			if v != "" {
				b.WriteString(k + " = " + v + "\n")
			}
		}
		for k, v := range change {
			if _, ok := good[k]; !ok {
				b.WriteString(k + " = " + v + "\n")
			}
		}
		return b.String()
	}
	tests := []struct {
		name, text string
		want       []string
	}{
		{"syntax", "[[certificate]\n", []string{"toml: line"}},
		{"no certificates", `retry_max = "1h"`, []string{"no [[certificate]]"}},
		{"unknown setting", "retry_maximum = \"1h\"\n" + cert(nil), []string{"unknown keys: retry_maximum"}},
		{"a setting in another case", "retry_max = \"1h\"\nRETRY_MAX = \"2h\"\n" + cert(nil), []string{"RETRY_MAX (keys are case-sensitive: retry_max)"}},
		{"unknown certificate key", cert(map[string]string{"renew_befor": `"7d"`}), []string{`certificate 1 ("web")`, "unknown keys: renew_befor"}},
		{"no name", cert(map[string]string{"name": ""}), []string{"certificate 1:", "name is required"}},
		{"bad name", cert(map[string]string{"name": `"../etc"`}), []string{"name \"../etc\""}},
		{"duplicate name", cert(nil) + cert(map[string]string{"key_path": `"/k2"`, "cert_path": `"/c2"`}), []string{"certificate 2", "already used by certificate 1"}},
		{"shared key file", cert(nil) + cert(map[string]string{"name": `"other"`, "cert_path": `"/c2"`}), []string{`certificate 2 ("other")`, "/k.pem is also a file of certificate \"web\""}},
		{"no protocol", cert(map[string]string{"protocol": ""}), []string{"protocol is required: scep or est"}},
		{"bad protocol", cert(map[string]string{"protocol": `"acme"`}), []string{`protocol "acme": want scep or est`}},
		{"no url", cert(map[string]string{"url": ""}), []string{"url is required"}},
		{"relative url", cert(map[string]string{"url": `"ca.example/scep"`}), []string{"not an absolute URL"}},
		// Credentials in the URL are refused at start, for both protocols,
		// and never echoed (r88 D3: EST refused them only when due).
		{"EST url with credentials", cert(map[string]string{"protocol": `"est"`, "url": `"https://fleet:pw@127.0.0.1:8443/cb"`}),
			[]string{`url "https://fleet:xxxxx@127.0.0.1:8443/cb" carries credentials`, "remove the credentials from url"}},
		{"SCEP url with credentials", cert(map[string]string{"url": `"http://u:pw@127.0.0.1:8080/scep"`}),
			[]string{`url "http://u:xxxxx@127.0.0.1:8080/scep" carries credentials`, "remove the credentials from url"}},
		{"SCEP url with a user", cert(map[string]string{"url": `"http://u@127.0.0.1:8080/scep"`}), []string{"carries credentials"}},
		{"EST over http", cert(map[string]string{"protocol": `"est"`, "url": `"http://ca.example"`}), []string{"EST runs over https://"}},
		{"EST with a query", cert(map[string]string{"protocol": `"est"`, "url": `"https://ca.example/.well-known/est?tenant=x"`}), []string{"has a query or fragment"}},
		{"EST with a two-segment label", cert(map[string]string{"protocol": `"est"`, "url": `"https://ca.example/a/b"`}), []string{"a label is one path segment"}},
		{"no fingerprint", cert(map[string]string{"ca_fingerprint": ""}), []string{"ca_fingerprint is required"}},
		{"short fingerprint", cert(map[string]string{"ca_fingerprint": `"sha256:abcd"`}), []string{"64 hex digits"}},
		{"no key path", cert(map[string]string{"key_path": ""}), []string{"key_path is required"}},
		{"no cert path", cert(map[string]string{"cert_path": ""}), []string{"cert_path is required"}},
		{"chain in key file", cert(map[string]string{"chain_path": `"/k.pem"`}), []string{"chain_path is key_path"}},
		{"bad renew_before", cert(map[string]string{"renew_before": `"7x"`}), []string{`renew_before = "7x"`, "bad duration"}},
		{"zero renew_before", cert(map[string]string{"renew_before": `"0s"`}), []string{"must be positive"}},
		{"numeric renew_before", cert(map[string]string{"renew_before": `7`}), []string{"renew_before"}},
		{"bad key type", cert(map[string]string{"key_type": `"dsa"`}), []string{`key_type "dsa"`, "p256"}},
		{"key type without rekey", cert(map[string]string{"key_type": `"p256"`, "rekey": "false"}), []string{"rekey = false keeps the key"}},
		{"challenge for EST", cert(map[string]string{"protocol": `"est"`, "url": `"https://h"`, "challenge_file": `"c"`}), []string{"challenge_file is for SCEP"}},
		{"bad post_renew_timeout", cert(map[string]string{"post_renew_timeout": `"soon"`}), []string{"post_renew_timeout"}},
		{"retry order", "retry_initial = \"2h\"\nretry_max = \"1h\"\n" + cert(nil), []string{"retry_initial (2h0m0s) is longer than retry_max (1h0m0s)"}},
		{"bad retry", "retry_initial = \"-1s\"\n" + cert(nil), []string{"retry_initial", "must be positive"}},
		{"once attempts", "once_attempts = 0\n" + cert(nil), []string{"once_attempts = 0: want 1 to 100"}},
		// Type errors name the key (and the certificate, by its name) and what it takes.
		{"duration as a number", "retry_initial = 5\n" + cert(nil), []string{`retry_initial = 5: want a duration in quotes, such as "5m"`}},
		{"attempts as a string", "once_attempts = \"3\"\n" + cert(nil), []string{`once_attempts = "3": want a whole number, without quotes`}},
		// A float is echoed as a float, not as the whole number it equals (r86 D7).
		{"attempts as a float", "once_attempts = 3.0\n" + cert(nil), []string{`once_attempts = 3.0: want a whole number, without quotes`}},
		{"attempts as a large float", "once_attempts = 1e21\n" + cert(nil), []string{`once_attempts = 1e+21: want a whole number`}},
		{"attempts as infinity", "once_attempts = -inf\n" + cert(nil), []string{`once_attempts = -inf: want a whole number`}},
		{"duration as a date", "retry_initial = 2026-01-01\n" + cert(nil), []string{`retry_initial = a date: want a duration in quotes`}},
		{"duration as a time of day", "retry_initial = 07:32:00\n" + cert(nil), []string{`retry_initial = a time of day: want a duration`}},
		{"duration as a date and time", "retry_initial = 1979-05-27T07:32:00Z\n" + cert(nil), []string{`retry_initial = a date and time: want a duration`}},
		{"rekey as a string", cert(map[string]string{"rekey": `"false"`}), []string{`certificate 1 ("web"): rekey = "false": want true or false, without quotes`}},
		{"url as a number", cert(map[string]string{"url": `8080`}), []string{`certificate 1 ("web"): url = 8080: want a string, in quotes`}},
		{"certificate not a table", "certificate = 1\n", []string{"certificate = 1: want [[certificate]] tables"}},
		// A refused name says why.
		{"name of dots", cert(map[string]string{"name": `".."`}), []string{`name "..": a name of only dots would name the directory itself or its parent`}},
		{"name of one dot", cert(map[string]string{"name": `"."`}), []string{`name ".": a name of only dots`}},
		{"name starting with a dash", cert(map[string]string{"name": `"-x"`}), []string{`name "-x": starts with "-"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.text), "/")
			if err == nil {
				t.Fatalf("no error for:\n%s", tt.text)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q\nconfig:\n%s", err, w, tt.text)
				}
			}
			if strings.Contains(err.Error(), ":pw@") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestLoadConfigNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(path, []byte("frobnicate = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("err = %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: err = %v", err)
	}
}

// Every spelling client.CheckFingerprint takes is taken here too.
func TestFingerprintSpellings(t *testing.T) {
	hex := strings.TrimPrefix(fp, "sha256:")
	for _, s := range []string{fp, "SHA256:" + hex, "sha-256:" + hex, "SHA-256:" + strings.ToUpper(hex), hex} {
		if !validFingerprint(s) {
			t.Errorf("validFingerprint(%q) = false", s)
		}
	}
	for _, s := range []string{"", "sha1:" + hex, hex[:62], "md5:00"} {
		if validFingerprint(s) {
			t.Errorf("validFingerprint(%q) = true", s)
		}
	}
}

// A password in the url is in no status, log line or configuration error.
func TestURLPasswordIsNeverShown(t *testing.T) {
	const secret = "s3cret"
	f := newFixture(t, fixtureOpts{})
	f.cert().URL = "http://user:" + secret + "@127.0.0.1:1/scep"
	var out bytes.Buffer
	if err := WriteStatus(&out, f.agent.Status(), f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), secret) || !strings.Contains(out.String(), "http://user:xxxxx@127.0.0.1:1/scep") {
		t.Errorf("status:\n%s", out.String())
	}
	f.clock.Set(RenewalPoint(f.first, 0))
	if err := f.agent.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logs := f.logs.String(); strings.Contains(logs, secret) || !strings.Contains(logs, "user:xxxxx@") {
		t.Errorf("the log shows the password or no url:\n%s", logs)
	}
	_, err := ParseConfig([]byte("[[certificate]]\nname = \"w\"\nprotocol = \"est\"\nurl = \"http://user:"+secret+"@ca.example\"\n"+
		"ca_fingerprint = \""+fp+"\"\nkey_path = \"/k\"\ncert_path = \"/c\"\n"), "/")
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "EST runs over") {
		t.Errorf("config error: %v", err)
	}
}

// A ".." after a symbolic link in key_path or cert_path goes up from
// where the link leads, as the kernel (and the service given the same
// string) takes it: the agent manages the file the service opens. Before,
// "lnk/../cert.pem" was cleaned by text to the config's own directory
// (r108 D3). A path whose links before the ".." lead nowhere is refused,
// naming it, for what it names cannot be told.
func TestDotDotAfterALinkIsTakenAsTheKernelTakesIt(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"real/deep", "other"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"lnk": "real/deep", "abs": filepath.Join(base, "real/deep"), "gone": "nowhere/deep"} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name, key, cert string
		wantKey         string // "" with wantErr
		wantCert        string
		wantErr         string
	}{
		{name: "relative link", key: "lnk/../key.pem", cert: "lnk/../cert.pem", wantKey: "real/key.pem", wantCert: "real/cert.pem"},
		{name: "absolute link", key: "abs/../key.pem", cert: "other/../abs/../../other/cert.pem", wantKey: "real/key.pem", wantCert: "other/cert.pem"},
		{name: "absolute path", key: base + "/lnk/../../other/key.pem", cert: "cert.pem", wantKey: "other/key.pem", wantCert: "cert.pem"},
		{name: "no link", key: "other/../key.pem", cert: "./other/./cert.pem", wantKey: "key.pem", wantCert: "other/cert.pem"},
		{name: "link leading nowhere", key: "gone/../key.pem", cert: "cert.pem", wantErr: `key_path "gone/../key.pem": ` + base + "/gone/.. cannot be followed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			text := "[[certificate]]\nname = \"web\"\nprotocol = \"scep\"\nurl = \"http://ca.example/scep\"\nca_fingerprint = \"" + fp + "\"\n" +
				"key_path = \"" + tt.key + "\"\ncert_path = \"" + tt.cert + "\"\n"
			cfg, err := ParseConfig([]byte(text), base)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.Certificates[0]
			if want := filepath.Join(base, tt.wantKey); c.KeyPath != want {
				t.Errorf("key_path = %s, want %s", c.KeyPath, want)
			}
			if want := filepath.Join(base, tt.wantCert); c.CertPath != want {
				t.Errorf("cert_path = %s, want %s", c.CertPath, want)
			}
		})
	}
}

// The config's own directory, for its relative paths, is where the kernel
// found the file: "--config lnk/../agent.toml" is in the directory above
// where lnk leads, not beside lnk.
func TestConfigPathWithDotDotAfterALink(t *testing.T) {
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "real/deep"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real/deep", filepath.Join(base, "lnk")); err != nil {
		t.Fatal(err)
	}
	text := "[[certificate]]\nname = \"web\"\nprotocol = \"scep\"\nurl = \"http://ca.example/scep\"\nca_fingerprint = \"" + fp + "\"\nkey_path = \"key.pem\"\ncert_path = \"cert.pem\"\n"
	if err := os.WriteFile(filepath.Join(base, "real/agent.toml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(base + "/lnk/../agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(base, "real/key.pem"); cfg.Certificates[0].KeyPath != want {
		t.Errorf("key_path = %s, want %s", cfg.Certificates[0].KeyPath, want)
	}
}
