package main

import (
	"context"
	"path/filepath"
	"testing"
)

// TestSecretConflictNamesEachAsGiven (r120 D2): a secret given both
// directly and in a file is refused naming each of the two settings once,
// as it was given (flag, variable, or config file and key), for every
// secret refused so: not "SCEPTER_CHALLENGE (or SCEPTER_CHALLENGE)"; and
// the config file once when both are its keys (r125).
func TestSecretConflictNamesEachAsGiven(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	writeTestFile(t, secret, "a-secret-from-the-file\n")
	config := filepath.Join(dir, "scepter.toml")
	writeTestFile(t, config, "challenge = \"from-the-file\"\nchallenge_file = \""+secret+"\"\n")
	challengeOnly := filepath.Join(dir, "challenge.toml")
	writeTestFile(t, challengeOnly, "challenge = \"from-the-file\"\n")
	ndes := filepath.Join(dir, "ndes.toml")
	writeTestFile(t, ndes, "ndes_user = \"nd\"\nndes_password_file = \""+secret+"\"\n")
	smtp := filepath.Join(dir, "smtp.toml")
	writeTestFile(t, smtp, "smtp_url = \"smtp://u@127.0.0.1:1\"\nnotify_from = \"ca@example.com\"\nsmtp_password_file = \""+secret+"\"\n")
	serve := []string{"serve", "--listen", "127.0.0.1:0", "--est-listen", "off"}
	const rest = " both give the secret: give one"
	for _, tt := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"challenge flag, file flag", nil, append(serve, "--challenge", "abc", "--challenge-file", secret),
			"--challenge and --challenge-file"},
		{"challenge variable, file flag", map[string]string{"SCEPTER_CHALLENGE": "abc"}, append(serve, "--challenge-file", secret),
			"SCEPTER_CHALLENGE and --challenge-file"},
		{"challenge flag, file variable", map[string]string{"SCEPTER_CHALLENGE_FILE": secret}, append(serve, "--challenge", "abc"),
			"--challenge and SCEPTER_CHALLENGE_FILE"},
		{"challenge variable, file variable", map[string]string{"SCEPTER_CHALLENGE": "abc", "SCEPTER_CHALLENGE_FILE": secret}, serve,
			"SCEPTER_CHALLENGE and SCEPTER_CHALLENGE_FILE"},
		{"challenge and file in the config file", nil, append(serve, "--config", config),
			"config " + config + ": challenge and challenge_file"},
		{"challenge in the config file, file flag", nil, append(serve, "--config", challengeOnly, "--challenge-file", secret),
			"config " + challengeOnly + ": challenge and --challenge-file"},
		{"NDES password variable, file flag", map[string]string{"SCEPTER_NDES_PASSWORD": "ndes-pass-0123456"}, append(serve, "--ndes-user", "nd", "--ndes-password-file", secret),
			"SCEPTER_NDES_PASSWORD and --ndes-password-file"},
		{"NDES password flag, file in the config file", nil, append(serve, "--config", ndes, "--ndes-password", "ndes-pass-0123456"),
			"--ndes-password and ndes_password_file in config " + ndes},
		{"SMTP password variable, file in the config file", map[string]string{"SCEPTER_SMTP_PASSWORD": "pw"}, append(serve, "--config", smtp),
			"SCEPTER_SMTP_PASSWORD and smtp_password_file in config " + smtp},
		{"SMTP password variable, file flag (notify test)", map[string]string{"SCEPTER_SMTP_PASSWORD": "pw"},
			[]string{"notify", "test", "--to", "ops@example.com", "--smtp-url", "smtp://u@127.0.0.1:1", "--notify-from", "ca@example.com", "--smtp-password-file", secret},
			"SCEPTER_SMTP_PASSWORD and --smtp-password-file"},
		{"bench challenge variable, file flag", map[string]string{"SCEPTER_CHALLENGE": "abc"}, []string{"bench", "--url", "http://127.0.0.1:1/scep", "--challenge-file", secret},
			"SCEPTER_CHALLENGE and --challenge-file"},
		{"bench EST password variable, file flag", map[string]string{"SCEPTER_EST_PASSWORD": "pw"},
			[]string{"bench", "--url", "http://127.0.0.1:1/scep", "--est-user", "u", "--est-password-file", secret},
			"SCEPTER_EST_PASSWORD and --est-password-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{}, tt.args...), "--data-dir", filepath.Join(t.TempDir(), "data"))
			if tt.args[0] == "bench" {
				args = tt.args
			}
			e, _, _ := testEnv(tt.vars)
			err := run(context.Background(), e, args)
			if exitCode(err) != 2 || err == nil || err.Error() != tt.want+rest {
				t.Errorf("err = %v (exit %d), want exit 2 and %q", err, exitCode(err), tt.want+rest)
			}
		})
	}
}
